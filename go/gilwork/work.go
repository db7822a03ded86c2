package main

import (
	"bytes"
	"compress/zlib"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// --- types -------------------------------------------------------------------

// resultLine is the one JSON line the batch mode prints, the same keys as the
// Python and Rust programs.
type resultLine struct {
	Lang            string  `json:"lang"`
	Pool            string  `json:"pool"`
	Task            string  `json:"task"`
	Workers         int     `json:"workers"`
	Batches         int     `json:"batches"`
	BatchSize       int     `json:"batch_size"`
	ElapsedS        float64 `json:"elapsed_s"`
	TasksPerS       float64 `json:"tasks_per_s"`
	CompressedBytes *int64  `json:"compressed_bytes,omitempty"`
	Digest          string  `json:"digest"`
}

// taskResult is what one task leaves behind: a summary or compressed bytes.
type taskResult struct {
	summary    *Summary
	compressed []byte
	err        error
}

// --- limits ------------------------------------------------------------------

const zlibLevel = 6

// --- batches -----------------------------------------------------------------

// buildBatches reads the statuses of inputPath as raw source text and makes
// the distinct batches: batch i is the statuses rotated left by i, cut to
// batchSize. Raw text rather than re-encoded values keeps the batches byte for
// byte the same as the Python and Rust programs build. Batch i and batch i+n
// (n statuses) are the same bytes, so only min(batches, n) are built and
// batch i is out[i%len(out)]: memory then shows the workers, not B copies of
// one file.
func buildBatches(inputPath string, batches, batchSize int) ([][]byte, error) {
	data, err := os.ReadFile(inputPath)
	if err != nil {
		return nil, fmt.Errorf("reading input: %v", err)
	}
	var doc struct {
		Statuses []json.RawMessage `json:"statuses"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parsing %s: %v", inputPath, err)
	}
	raw := doc.Statuses
	if batchSize < 1 || batchSize > len(raw) {
		return nil, fmt.Errorf("--batch-size must be between 1 and %d", len(raw))
	}
	out := make([][]byte, min(batches, len(raw)))
	for start := range out {
		var b bytes.Buffer
		b.WriteString(`{"statuses":[`)
		for k := 0; k < batchSize; k++ {
			if k > 0 {
				b.WriteByte(',')
			}
			b.Write(raw[(start+k)%len(raw)])
		}
		b.WriteString("]}")
		out[start] = b.Bytes()
	}
	return out, nil
}

// --- workers -----------------------------------------------------------------

func compress(body []byte) ([]byte, error) {
	var buf bytes.Buffer
	w, err := zlib.NewWriterLevel(&buf, zlibLevel)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(body); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func runTask(task string, body []byte) taskResult {
	if task == "summarise" {
		s, err := Summarise(body)
		return taskResult{summary: s, err: err}
	}
	c, err := compress(body)
	return taskResult{compressed: c, err: err}
}

// runAll runs task over batches 0..count-1 on `workers` goroutines. Each goroutine
// takes the next batch index from a shared counter, so a slow batch never
// leaves the others idle, and writes only its own slots of the result slice,
// which is why the slice needs no lock.
func runAll(task string, workers, count int, batches [][]byte) []taskResult {
	results := make([]taskResult, count)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				results[i] = runTask(task, batches[i%len(batches)])
			}
		}()
	}
	wg.Wait()
	return results
}

func inflate(compressed []byte) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// runBatches times the task over batches 0..count-1 (batches holds the
// distinct ones) and returns the result line.
func runBatches(task string, workers, count int, batches [][]byte, batchSize int) (*resultLine, error) {
	// Warm-up, untimed: one task per worker.
	runAll(task, workers, min(workers, count), batches)

	start := time.Now()
	results := runAll(task, workers, count, batches)
	elapsedS := time.Since(start).Seconds()

	line := &resultLine{
		Lang: "go", Pool: "goroutines", Task: task, Workers: workers,
		Batches: count, BatchSize: batchSize,
		ElapsedS: elapsedS, TasksPerS: float64(count) / elapsedS,
	}

	// The digest covers the canonical JSON of the per-batch results, built
	// after timing: it is not the work measured.
	var compressedBytes int64
	canon := []byte{'['}
	for i, r := range results {
		if r.err != nil {
			return nil, fmt.Errorf("batch %d: %v", i, r.err)
		}
		if i > 0 {
			canon = append(canon, ',')
		}
		if task == "summarise" {
			canon = r.summary.AppendCanonical(canon)
			continue
		}
		compressedBytes += int64(len(r.compressed))
		body := batches[i%len(batches)]
		back, err := inflate(r.compressed)
		if err != nil {
			return nil, fmt.Errorf("batch %d: inflating: %v", i, err)
		}
		ok := "false"
		if bytes.Equal(back, body) {
			ok = "true"
		}
		canon = fmt.Appendf(canon, `{"input_bytes":%d,"ok":%s}`, len(body), ok)
	}
	canon = append(canon, ']')
	sum := sha256.Sum256(canon)
	line.Digest = hex.EncodeToString(sum[:])
	if task == "compress" {
		line.CompressedBytes = &compressedBytes
	}
	return line, nil
}
