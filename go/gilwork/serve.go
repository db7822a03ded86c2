package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// --- handlers ----------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func writeError(w http.ResponseWriter, e *BadInput) {
	writeJSON(w, e.Status, errorBody(e))
}

// handleSummarise answers POST /summarise: one batch in, its summary out.
func handleSummarise(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, &BadInput{Status: 405, Kind: "method_not_allowed", Detail: "use POST /summarise with a JSON body"})
		return
	}
	tooLarge := &BadInput{Status: 413, Kind: "body_too_large",
		Detail: fmt.Sprintf("the body is over the limit of %d bytes", bodyLimitBytes)}
	if r.ContentLength > bodyLimitBytes {
		writeError(w, tooLarge)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyLimitBytes))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			writeError(w, tooLarge)
			return
		}
		writeError(w, &BadInput{Status: 400, Kind: "bad_request", Detail: "reading the body: " + err.Error()})
		return
	}
	s, err := Summarise(body)
	if err != nil {
		writeError(w, err.(*BadInput))
		return
	}
	writeJSON(w, http.StatusOK, s.AppendCanonical(nil))
}

func handleNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, &BadInput{Status: 404, Kind: "not_found", Detail: "no route for " + r.Method + " " + r.URL.Path})
}

func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/summarise", handleSummarise)
	mux.HandleFunc("/", handleNotFound)
	return mux
}

// --- limits ------------------------------------------------------------------

const (
	bodyLimitBytes    = 2 << 20 // 2 MiB: a batch of 100 statuses is about 600 KB
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 30 * time.Second
	idleTimeout       = 60 * time.Second
	shutdownGrace     = 4 * time.Second // inside the contract's 5 s
)

// --- start and graceful shutdown ---------------------------------------------

// serve listens on 127.0.0.1:port until SIGTERM or SIGINT, then lets the
// requests in flight finish.
func serve(port int) error {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("listening: %v", err)
	}
	srv := &http.Server{
		Handler:           newMux(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		IdleTimeout:       idleTimeout,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	// The bench reads the port from this line; stdout is unbuffered in Go.
	fmt.Printf("listening on %s\n", ln.Addr())

	select {
	case err := <-served:
		return fmt.Errorf("serving: %v", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(os.Stderr, "shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
