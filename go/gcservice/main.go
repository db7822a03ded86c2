// Command gcservice is the GC chapter's order service in Go: the same
// object-heavy work as the Java and Rust versions (a large long-lived cache,
// a per-request object graph, one cache entry replaced per request), under
// Go's concurrent collector. Run it with GODEBUG=gctrace=1 to see each cycle
// and its two stop-the-world phases on stderr.
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
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

// OrdersRequest is the request body: a batch of statuses shaped like
// data/twitter.json. Only the fields the answer needs are typed;
// encoding/json skips the rest.
type OrdersRequest struct {
	// A pointer so that a missing or null batch is told apart from an empty one.
	Statuses *[]Status `json:"statuses"`
}

// Status is one status. Absent or null fields keep their zero value, and the
// Java and Rust services do the same so that the three answer alike.
type Status struct {
	Text     string   `json:"text"`
	User     User     `json:"user"`
	Entities Entities `json:"entities"`
}

// User is the author of a status.
type User struct {
	FollowersCount int64 `json:"followers_count"`
}

// Entities holds what Twitter extracted from the text.
type Entities struct {
	Hashtags []Hashtag `json:"hashtags"`
}

// Hashtag is one #tag in the text.
type Hashtag struct {
	Text string `json:"text"`
}

// OrderRecord is the per-request object graph: one per status, with its text
// split into words. It is the garbage that dies young.
type OrderRecord struct {
	Words     []string
	Hashtags  []string
	Followers int64
}

// OrdersAnswer is what POST /orders returns.
type OrdersAnswer struct {
	Statuses  int   `json:"statuses"`
	Words     int   `json:"words"`
	Hashtags  int   `json:"hashtags"`
	Followers int64 `json:"followers"`
}

type errorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

// CacheEntry is one entry of the long-lived cache: a few small objects and
// strings, built from an index. Nothing reads it after it is built: it exists
// to fill the old part of the heap the way the Java cache does.
type CacheEntry struct {
	ID       uint64
	Key      string
	Customer *Customer
	Lines    []*OrderLine
	Note     string
}

// Customer is who placed the cached order.
type Customer struct {
	Name    string
	Email   string
	Address *Address
}

// Address is where the cached order goes.
type Address struct {
	Street string
	City   string
	Zip    string
}

// OrderLine is one line of the cached order.
type OrderLine struct {
	SKU        string
	Quantity   uint32
	PriceCents uint64
}

// Cache is the long-lived working set. Each slot is an atomic pointer, so a
// request replaces its slot without a lock and readers never see half an entry.
type Cache struct {
	slots          []atomic.Pointer[CacheEntry]
	requestsServed atomic.Uint64
}

var cities = [...]string{"Lisbon", "Porto", "Lyon", "Leeds", "Turin", "Ghent", "Graz", "Malmo"}

// buildEntry builds the entry for index. The Java and Rust services build the
// same strings, so the three caches hold the same data.
func buildEntry(index uint64) *CacheEntry {
	lines := make([]*OrderLine, orderLinesPerEntry)
	for line := uint64(0); line < orderLinesPerEntry; line++ {
		lines[line] = &OrderLine{
			SKU:        fmt.Sprintf("SKU-%d-%d", index, line),
			Quantity:   uint32((index+line)%9 + 1),
			PriceCents: (index*31 + line*17) % 10_000,
		}
	}
	note := fmt.Sprintf("order %d ", index)
	if len(note) < noteChars {
		note += strings.Repeat("-", noteChars-len(note))
	}
	return &CacheEntry{
		ID:  index,
		Key: fmt.Sprintf("order-%08d", index),
		Customer: &Customer{
			Name:  fmt.Sprintf("Customer %d", index%9973),
			Email: fmt.Sprintf("customer%d@example.test", index),
			Address: &Address{
				Street: fmt.Sprintf("%d Legacy Street", index%997),
				City:   cities[index%uint64(len(cities))],
				Zip:    fmt.Sprintf("%05d", index%100_000),
			},
		},
		Lines: lines,
		Note:  note,
	}
}

// NewCache fills a cache of entries slots.
func NewCache(entries int) *Cache {
	cache := &Cache{slots: make([]atomic.Pointer[CacheEntry], entries)}
	for i := range cache.slots {
		cache.slots[i].Store(buildEntry(uint64(i)))
	}
	return cache
}

// ReplaceNext replaces the slot the request counter points at with a fresh
// entry. The old entry becomes garbage for the collector to find.
func (c *Cache) ReplaceNext() {
	counter := c.requestsServed.Add(1) - 1
	c.slots[counter%uint64(len(c.slots))].Store(buildEntry(counter))
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

// requestError is a 4xx answer: its status, kind and sentence.
type requestError struct {
	status int
	kind   string
	detail string
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// A write error means the client left; there is no one to tell.
	_ = json.NewEncoder(w).Encode(value)
}

func writeError(w http.ResponseWriter, e *requestError) {
	writeJSON(w, e.status, errorBody{Error: e.kind, Detail: e.detail})
}

// nestingDepth is the deepest nesting of arrays and objects in body, counted
// outside strings. encoding/json allows 10,000 levels; the three services
// check one shared, smaller limit themselves so that they agree.
func nestingDepth(body []byte) int {
	depth, deepest := 0, 0
	inString, escaped := false, false
	for _, b := range body {
		switch {
		case escaped:
			escaped = false
		case inString && b == '\\':
			escaped = true
		case b == '"':
			inString = !inString
		case inString:
		case b == '[' || b == '{':
			depth++
			deepest = max(deepest, depth)
		case b == ']' || b == '}':
			depth--
		}
	}
	return deepest
}

// answerOrders parses and answers one batch, or says what is wrong with it.
func answerOrders(body []byte) (OrdersAnswer, *requestError) {
	// encoding/json would quietly replace bad bytes with U+FFFD; the Java and
	// Rust services refuse them, and so does this one.
	if !utf8.Valid(body) {
		return OrdersAnswer{}, &requestError{http.StatusBadRequest, "malformed_json",
			"the body is not UTF-8"}
	}
	if nestingDepth(body) > maxNestingDepth {
		return OrdersAnswer{}, &requestError{http.StatusBadRequest, "malformed_json",
			fmt.Sprintf("the body nests deeper than %d levels", maxNestingDepth)}
	}

	var request OrdersRequest
	// Unmarshal checks the syntax of the whole body before it binds any
	// field, so a body with both kinds of fault is a syntax error.
	if err := json.Unmarshal(body, &request); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return OrdersAnswer{}, &requestError{http.StatusUnprocessableEntity, "wrong_type",
				fmt.Sprintf("the body does not match the orders schema: %v", err)}
		}
		return OrdersAnswer{}, &requestError{http.StatusBadRequest, "malformed_json",
			fmt.Sprintf("the body is not valid JSON: %v", err)}
	}
	if request.Statuses == nil {
		return OrdersAnswer{}, &requestError{http.StatusUnprocessableEntity, "missing_field",
			`the body needs a "statuses" array`}
	}

	records := make([]*OrderRecord, 0, len(*request.Statuses))
	for _, status := range *request.Statuses {
		hashtags := make([]string, 0, len(status.Entities.Hashtags))
		for _, tag := range status.Entities.Hashtags {
			hashtags = append(hashtags, tag.Text)
		}
		records = append(records, &OrderRecord{
			Words:     strings.Fields(status.Text),
			Hashtags:  hashtags,
			Followers: status.User.FollowersCount,
		})
	}

	answer := OrdersAnswer{Statuses: len(records)}
	for _, record := range records {
		answer.Words += len(record.Words)
		answer.Hashtags += len(record.Hashtags)
		// int64 wraps on overflow, as Java's long and the Rust service do.
		answer.Followers += record.Followers
	}
	return answer, nil
}

// handleOrders is POST /orders: answer the batch and replace one cache entry.
func handleOrders(cache *Cache) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeError(w, &requestError{http.StatusMethodNotAllowed, "method_not_allowed",
				"use POST for /orders"})
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, bodyLimitBytes))
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, &requestError{http.StatusRequestEntityTooLarge, "body_too_large",
					fmt.Sprintf("the body is over %d bytes", bodyLimitBytes)})
				return
			}
			writeError(w, &requestError{http.StatusBadRequest, "bad_body",
				"the body could not be read"})
			return
		}
		answer, reqErr := answerOrders(body)
		if reqErr != nil {
			writeError(w, reqErr)
			return
		}
		cache.ReplaceNext()
		writeJSON(w, http.StatusOK, answer)
	}
}

// handleHealth is GET /health: the bench's readiness probe.
func handleHealth(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, &requestError{http.StatusMethodNotAllowed, "method_not_allowed",
			"use GET for /health"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func newMux(cache *Cache) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/orders", handleOrders(cache))
	mux.HandleFunc("/health", handleHealth)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, &requestError{http.StatusNotFound, "not_found",
			"the endpoints are POST /orders and GET /health"})
	})
	return mux
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

const (
	// bodyLimitBytes: larger bodies get a 413 before any parsing.
	bodyLimitBytes = 1024 * 1024
	// maxNestingDepth: deeper bodies are a 400. No real batch nests past
	// five levels; the limit keeps recursive parsers off the stack's edge.
	maxNestingDepth = 128
	// defaultCacheEntries is the cache size the Java service fits in a
	// 512 MiB heap with headroom.
	defaultCacheEntries = 200_000
	orderLinesPerEntry  = 4
	// noteChars pads an entry to near the Java entry's size.
	noteChars = 96
	// shutdownGrace: SIGTERM or SIGINT wait this long for requests in
	// flight, inside the contract's 5 seconds.
	shutdownGrace     = 4 * time.Second
	readHeaderTimeout = 5 * time.Second
	idleTimeout       = 60 * time.Second
)

// ---------------------------------------------------------------------------
// Start and graceful shutdown
// ---------------------------------------------------------------------------

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (0: the OS picks)")
	cacheEntries := flag.Int("cache-entries", defaultCacheEntries, "entries in the long-lived cache")
	flag.Parse()
	if *cacheEntries < 1 {
		fmt.Fprintln(os.Stderr, "ERROR: --cache-entries must be at least 1")
		os.Exit(2)
	}

	cache := NewCache(*cacheEntries)
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	fmt.Fprintf(os.Stderr, "cache filled: entries=%d heap_alloc_mib=%d\n",
		*cacheEntries, mem.HeapAlloc/(1024*1024))

	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERROR: listening on 127.0.0.1:%d: %v\n", *port, err)
		os.Exit(1)
	}
	server := &http.Server{
		Handler:           newMux(cache),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	var served sync.WaitGroup
	served.Add(1)
	go func() {
		defer served.Done()
		if err := server.Serve(listener); !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintf(os.Stderr, "ERROR: serving: %v\n", err)
			os.Exit(1)
		}
	}()
	// os.Stdout is unbuffered, so the bench sees this line at once.
	fmt.Printf("listening on %s\n", listener.Addr())

	<-stop
	fmt.Fprintln(os.Stderr, "shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "shutdown: %v\n", err)
	}
	served.Wait()
}
