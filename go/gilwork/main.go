// Command gilwork is the Go side of the GIL chapter: the same CPU-bound
// tasks as snippets/python/gil/work.py, on goroutines, and the same summary
// behind net/http.
//
//	gilwork --task summarise|compress --workers N --batches B \
//	        --batch-size S --input data/twitter.json
//	gilwork serve --port 0
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		fs := flag.NewFlagSet("gilwork serve", flag.ExitOnError)
		port := fs.Int("port", 0, "port on 127.0.0.1 (0: the OS picks)")
		fs.Parse(os.Args[2:])
		if err := serve(*port); err != nil {
			fmt.Fprintln(os.Stderr, "ERROR:", err)
			os.Exit(1)
		}
		return
	}

	fs := flag.NewFlagSet("gilwork", flag.ExitOnError)
	task := fs.String("task", "", "summarise or compress")
	workers := fs.Int("workers", 0, "goroutines doing the work")
	batches := fs.Int("batches", 0, "batches to process")
	batchSize := fs.Int("batch-size", 100, "statuses per batch")
	inputPath := fs.String("input", "", "a {\"statuses\": [...]} JSON file")
	fs.Parse(os.Args[1:])

	if *task != "summarise" && *task != "compress" {
		fail(fmt.Errorf("--task must be summarise or compress"))
	}
	if *workers < 1 || *batches < 1 || *inputPath == "" {
		fail(fmt.Errorf("--workers and --batches must be at least 1, and --input is required"))
	}
	all, err := buildBatches(*inputPath, *batches, *batchSize)
	if err != nil {
		fail(err)
	}
	line, err := runBatches(*task, *workers, *batches, all, *batchSize)
	if err != nil {
		fail(err)
	}
	out, err := json.Marshal(line)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(out))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "ERROR:", err)
	os.Exit(1)
}
