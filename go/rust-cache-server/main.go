// Command rust-cache-server is the Go caching service of the cache chapter:
// GET, PUT and DELETE of opaque values under URL-path keys, over net/http,
// with the storage behind the Store interface (store.go).
//
// The article calls this Go service "rust-cache-server"; the book keeps the
// name so the two can be matched.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ---- types ----

// service holds what every handler needs: only the Store, so the handlers
// are the same whichever store was chosen.
type service struct {
	store Store
}

// errorBody is the JSON body of every 4xx and 5xx answer.
type errorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// healthBody is the JSON body of GET /health.
type healthBody struct {
	Status string `json:"status"`
	Store  string `json:"store"`
	Keys   int    `json:"keys"`
}

// ---- handlers ----

// newHandler routes by hand rather than through ServeMux patterns so that
// every answer, 404 and 405 included, carries the JSON error body.
func newHandler(store Store) http.Handler {
	s := &service{store: store}
	return http.HandlerFunc(s.route)
}

func (s *service) route(w http.ResponseWriter, r *http.Request) {
	path := r.URL.EscapedPath()
	switch {
	case path == "/health":
		if r.Method != http.MethodGet {
			methodNotAllowed(w, "GET")
			return
		}
		s.health(w, r)
	case strings.HasPrefix(path, cachePrefix):
		s.cache(w, r, strings.TrimPrefix(path, cachePrefix))
	default:
		writeError(w, http.StatusNotFound, "not_found",
			"no such endpoint; use /cache/{key} or /health")
	}
}

// cache serves /cache/{key}; rawKey is still percent-encoded.
func (s *service) cache(w http.ResponseWriter, r *http.Request, rawKey string) {
	// A key is one path segment: /cache/a/b is another path, not a key.
	if strings.Contains(rawKey, "/") {
		writeError(w, http.StatusNotFound, "not_found",
			"a key is a single path segment: /cache/{key}")
		return
	}
	switch r.Method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		methodNotAllowed(w, "GET, PUT, DELETE")
		return
	}
	// net/http already answers 400 to a malformed escape before the handler
	// runs; this check keeps the handler safe on its own.
	key, err := url.PathUnescape(rawKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_key",
			"the key is not a valid percent-encoded path segment")
		return
	}
	if key == "" {
		writeError(w, http.StatusBadRequest, "empty_key",
			"the key must not be empty: /cache/{key}")
		return
	}
	if len(key) > MaxKeyBytes {
		writeError(w, http.StatusRequestURITooLong, "key_too_long",
			fmt.Sprintf("the key is %d bytes; the limit is %d bytes",
				len(key), MaxKeyBytes))
		return
	}

	switch r.Method {
	case http.MethodGet:
		s.get(w, r, key)
	case http.MethodPut:
		s.put(w, r, key)
	case http.MethodDelete:
		s.delete(w, r, key)
	}
}

func (s *service) get(w http.ResponseWriter, r *http.Request, key string) {
	value, ok, err := s.store.Get(r.Context(), key)
	if err != nil {
		storeFailed(w, err)
		return
	}
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no value under this key")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(value)))
	w.WriteHeader(http.StatusOK)
	w.Write(value)
}

func (s *service) put(w http.ResponseWriter, r *http.Request, key string) {
	// Refuse a declared oversize body before reading a byte of it.
	if r.ContentLength > MaxValueBytes {
		valueTooLarge(w)
		return
	}
	// MaxBytesReader also stops a chunked body that grows past the limit,
	// and tells the server to close the connection instead of draining it.
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxValueBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			valueTooLarge(w)
			return
		}
		writeError(w, http.StatusBadRequest, "bad_body",
			"the request body could not be read completely")
		return
	}
	if err := s.store.Put(r.Context(), key, value); err != nil {
		storeFailed(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *service) delete(w http.ResponseWriter, r *http.Request, key string) {
	if err := s.store.Delete(r.Context(), key); err != nil {
		storeFailed(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *service) health(w http.ResponseWriter, r *http.Request) {
	keys, err := s.store.Len(r.Context())
	if err != nil {
		storeFailed(w, err)
		return
	}
	writeJSON(w, http.StatusOK, healthBody{Status: "ok", Store: s.store.Name(), Keys: keys})
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
		"this endpoint accepts "+allow)
}

func valueTooLarge(w http.ResponseWriter) {
	writeError(w, http.StatusRequestEntityTooLarge, "value_too_large",
		fmt.Sprintf("the value is over the limit of %d bytes", MaxValueBytes))
}

// storeFailed answers 503: the request was fine, the store (Redis) was not.
// The cause goes nowhere but the body, since logging per request would
// distort a measurement.
func storeFailed(w http.ResponseWriter, err error) {
	writeError(w, http.StatusServiceUnavailable, "store_unavailable", err.Error())
}

func writeError(w http.ResponseWriter, status int, kind, detail string) {
	writeJSON(w, status, errorBody{Error: kind, Detail: detail})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	encoded, err := json.Marshal(body)
	if err != nil {
		// Only the fixed structs above reach here, and they always encode.
		panic(fmt.Sprintf("encoding %T: %v", body, err))
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(encoded)))
	w.WriteHeader(status)
	w.Write(encoded)
}

// ---- limits ----

const (
	// MaxKeyBytes is the longest key, counted after percent-decoding
	// (memcached's limit, which cache clients are used to).
	MaxKeyBytes = 250
	// MaxValueBytes is the largest value: 1 MiB.
	MaxValueBytes = 1 << 20

	cachePrefix = "/cache/"

	// readHeaderTimeout bounds a client that opens a request and stalls.
	readHeaderTimeout = 5 * time.Second
	// readTimeout and writeTimeout bound one request and one answer,
	// generous enough for a 1 MiB value on a slow loopback client.
	readTimeout  = 30 * time.Second
	writeTimeout = 30 * time.Second
	// idleTimeout must exceed the 60 s for which the bench holds 10,000
	// idle keep-alive connections open.
	idleTimeout = 120 * time.Second
	// maxHeaderBytes is far above any key the limits allow.
	maxHeaderBytes = 64 << 10
	// shutdownTimeout keeps a graceful stop inside the contract's 5 s.
	shutdownTimeout = 4 * time.Second
	// connectTimeout bounds the start-up check that Redis answers.
	connectTimeout = 3 * time.Second
)

// ---- start and graceful shutdown ----

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "rust-cache-server:", err)
		os.Exit(1)
	}
}

// run parses args, serves until ctx is done, then shuts down gracefully.
// The listening line goes to stdout; it is the only thing written there.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("rust-cache-server", flag.ContinueOnError)
	port := flags.Int("port", 0, "TCP port on 127.0.0.1; 0 lets the OS pick")
	storeName := flags.String("store", "rwmutex", "rwmutex, syncmap or redis")
	redisAddr := flags.String("redis-addr", "", "Redis address for --store redis, e.g. 127.0.0.1:6379")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *port < 0 || *port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port", *port)
	}

	store, err := openStore(ctx, *storeName, *redisAddr)
	if err != nil {
		return err
	}
	if closer, ok := store.(io.Closer); ok {
		defer closer.Close()
	}

	// Loopback only: the service is never reachable from another host.
	listener, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	server := &http.Server{
		Handler:           newHandler(store),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	// The listener already accepts (the kernel queues connections), so the
	// bench may connect as soon as it reads this line.
	fmt.Fprintf(stdout, "listening on %s\n", listener.Addr())
	fmt.Fprintf(os.Stderr, "rust-cache-server: store=%s\n", store.Name())

	select {
	case err := <-served:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}

	// Shutdown closes idle keep-alive connections at once and waits for
	// requests in flight; past the timeout, Close cuts what is left.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(shutdownCtx); err != nil {
		server.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	fmt.Fprintln(os.Stderr, "rust-cache-server: stopped")
	return nil
}

// openStore is the only place that knows the concrete stores.
func openStore(ctx context.Context, name, redisAddr string) (Store, error) {
	if name != "redis" && redisAddr != "" {
		return nil, fmt.Errorf("--redis-addr is only for --store redis")
	}
	switch name {
	case "rwmutex":
		return NewRWMutexStore(), nil
	case "syncmap":
		return NewSyncMapStore(), nil
	case "redis":
		if redisAddr == "" {
			return nil, fmt.Errorf("--store redis needs --redis-addr HOST:PORT")
		}
		return NewRedisStore(ctx, redisAddr)
	default:
		return nil, fmt.Errorf("--store %q: want rwmutex, syncmap or redis", name)
	}
}
