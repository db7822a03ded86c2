package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// memoryStores are the stores every handler test runs against; the Redis
// store joins them in redis_test.go when redis-server is available.
var memoryStores = []struct {
	name string
	open func() Store
}{
	{"rwmutex", func() Store { return NewRWMutexStore() }},
	{"syncmap", func() Store { return NewSyncMapStore() }},
}

// handlerCase is one request against a store that holds presentKey only.
type handlerCase struct {
	name       string
	method     string
	target     string
	body       []byte
	wantStatus int
	wantError  string // the "error" field of a JSON error body, if any
	wantBody   []byte // checked when not nil
}

const (
	presentKey   = "k1234"
	presentValue = "hello, cache"
)

func handlerCases() []handlerCase {
	longKey := strings.Repeat("a", MaxKeyBytes)
	return []handlerCase{
		{name: "get present", method: "GET", target: "/cache/" + presentKey,
			wantStatus: 200, wantBody: []byte(presentValue)},
		{name: "get absent", method: "GET", target: "/cache/nope",
			wantStatus: 404, wantError: "not_found"},
		{name: "put new", method: "PUT", target: "/cache/k1",
			body: []byte("v"), wantStatus: 204},
		{name: "put replace", method: "PUT", target: "/cache/" + presentKey,
			body: []byte("new"), wantStatus: 204},
		{name: "put empty value", method: "PUT", target: "/cache/k1",
			body: []byte{}, wantStatus: 204},
		{name: "put value at limit", method: "PUT", target: "/cache/k1",
			body: bytes.Repeat([]byte("x"), MaxValueBytes), wantStatus: 204},
		{name: "put value over limit", method: "PUT", target: "/cache/k1",
			body:       bytes.Repeat([]byte("x"), MaxValueBytes+1),
			wantStatus: 413, wantError: "value_too_large"},
		{name: "delete present", method: "DELETE", target: "/cache/" + presentKey,
			wantStatus: 204},
		{name: "delete absent", method: "DELETE", target: "/cache/nope",
			wantStatus: 204},
		{name: "key at limit", method: "PUT", target: "/cache/" + longKey,
			body: []byte("v"), wantStatus: 204},
		{name: "key over limit", method: "GET", target: "/cache/" + longKey + "a",
			wantStatus: 414, wantError: "key_too_long"},
		// Three encoded bytes decode to one: the limit counts decoded bytes.
		{name: "encoded key at limit", method: "PUT",
			target: "/cache/" + strings.Repeat("%41", MaxKeyBytes),
			body:   []byte("v"), wantStatus: 204},
		{name: "empty key", method: "GET", target: "/cache/",
			wantStatus: 400, wantError: "empty_key"},
		{name: "post on cache", method: "POST", target: "/cache/k1",
			wantStatus: 405, wantError: "method_not_allowed"},
		{name: "post on health", method: "POST", target: "/health",
			wantStatus: 405, wantError: "method_not_allowed"},
		{name: "two segments", method: "GET", target: "/cache/a/b",
			wantStatus: 404, wantError: "not_found"},
		{name: "other path", method: "GET", target: "/other",
			wantStatus: 404, wantError: "not_found"},
		{name: "root", method: "GET", target: "/",
			wantStatus: 404, wantError: "not_found"},
	}
}

// runHandlerCases runs every case against a fresh store from open.
func runHandlerCases(t *testing.T, open func(t *testing.T) Store) {
	for _, tc := range handlerCases() {
		t.Run(tc.name, func(t *testing.T) {
			store := open(t)
			ctx := context.Background()
			if err := store.Put(ctx, presentKey, []byte(presentValue)); err != nil {
				t.Fatalf("seeding the store: %v", err)
			}
			req := httptest.NewRequest(tc.method, tc.target, bytes.NewReader(tc.body))
			rec := httptest.NewRecorder()
			newHandler(store).ServeHTTP(rec, req)

			if got := rec.Code; got != tc.wantStatus {
				t.Fatalf("%s %s: status got %d, want %d (body %q)",
					tc.method, tc.target, got, tc.wantStatus, rec.Body.String())
			}
			if tc.wantBody != nil {
				if got := rec.Body.Bytes(); !bytes.Equal(got, tc.wantBody) {
					t.Errorf("body got %q, want %q", got, tc.wantBody)
				}
				if got := rec.Header().Get("Content-Type"); got != "application/octet-stream" {
					t.Errorf("Content-Type got %q, want application/octet-stream", got)
				}
			}
			if tc.wantError != "" {
				checkErrorBody(t, rec, tc.wantError)
			}
			if tc.wantStatus == 204 && rec.Body.Len() != 0 {
				t.Errorf("204 body got %q, want empty", rec.Body.String())
			}
		})
	}
}

func checkErrorBody(t *testing.T, rec *httptest.ResponseRecorder, wantError string) {
	t.Helper()
	if got := rec.Header().Get("Content-Type"); got != "application/json" {
		t.Errorf("error Content-Type got %q, want application/json", got)
	}
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body.String(), err)
	}
	if body.Error != wantError {
		t.Errorf("error got %q, want %q", body.Error, wantError)
	}
	if body.Detail == "" {
		t.Errorf("detail got empty, want a sentence")
	}
}

func TestHandlers(t *testing.T) {
	for _, s := range memoryStores {
		open := func(*testing.T) Store { return s.open() }
		t.Run(s.name, func(t *testing.T) { runHandlerCases(t, open) })
	}
}

// runRoundTrip drives one key through its life and checks /health counts.
func runRoundTrip(t *testing.T, store Store) {
	handler := newHandler(store)
	steps := []struct {
		method, target, body string
		wantStatus           int
		wantBody             string
	}{
		{"GET", "/cache/k1", "", 404, ""},
		{"PUT", "/cache/k1", "one", 204, ""},
		{"GET", "/cache/k1", "", 200, "one"},
		{"PUT", "/cache/k1", "two", 204, ""},
		{"GET", "/cache/k1", "", 200, "two"},
		{"PUT", "/cache/k2", "x", 204, ""},
		{"GET", "/health", "", 200,
			fmt.Sprintf(`{"status":"ok","store":%q,"keys":2}`, store.Name())},
		{"DELETE", "/cache/k1", "", 204, ""},
		{"DELETE", "/cache/k1", "", 204, ""},
		{"GET", "/cache/k1", "", 404, ""},
		{"GET", "/health", "", 200,
			fmt.Sprintf(`{"status":"ok","store":%q,"keys":1}`, store.Name())},
	}
	for i, step := range steps {
		req := httptest.NewRequest(step.method, step.target, strings.NewReader(step.body))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		if rec.Code != step.wantStatus {
			t.Fatalf("step %d %s %s: status got %d, want %d",
				i, step.method, step.target, rec.Code, step.wantStatus)
		}
		if step.wantBody != "" && rec.Body.String() != step.wantBody {
			t.Fatalf("step %d %s %s: body got %q, want %q",
				i, step.method, step.target, rec.Body.String(), step.wantBody)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range memoryStores {
		t.Run(s.name, func(t *testing.T) { runRoundTrip(t, s.open()) })
	}
}

func TestOpenStoreRejectsBadFlags(t *testing.T) {
	cases := []struct{ store, redisAddr string }{
		{"memcached", ""},
		{"redis", ""},
		{"rwmutex", "127.0.0.1:1"},
	}
	for _, tc := range cases {
		if _, err := openStore(context.Background(), tc.store, tc.redisAddr); err == nil {
			t.Errorf("openStore(%q, %q): got nil error, want one", tc.store, tc.redisAddr)
		}
	}
}

// TestRunServesAndShutsDown starts the real server on an OS-picked port,
// reads the listening line, makes one request, then cancels and expects a
// clean return well inside the 5 s contract.
func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdoutReader, stdoutWriter := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"--port", "0", "--store", "syncmap"}, stdoutWriter)
		stdoutWriter.Close()
	}()

	line, err := bufio.NewReader(stdoutReader).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the listening line: %v", err)
	}
	addr, found := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
	if !found || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Fatalf("listening line got %q, want \"listening on 127.0.0.1:PORT\"", line)
	}
	go io.Copy(io.Discard, stdoutReader)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /health: status got %d, want 200", resp.StatusCode)
	}
	if resp.Header.Get("Date") == "" {
		t.Errorf("GET /health: no Date header")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v, want nil", err)
		}
	case <-time.After(shutdownTimeout + time.Second):
		t.Fatalf("run did not return within %v of cancel", shutdownTimeout+time.Second)
	}
}
