package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

func startCluster(t *testing.T, size int) []*httptest.Server {
	t.Helper()
	addrs := make([]string, size)
	for i := range addrs {
		addrs[i] = freeAddr(t)
	}
	servers := make([]*httptest.Server, 0, size)
	for i := range addrs {
		var join []string
		if i > 0 {
			join = addrs[:1]
		}
		node, err := StartNode(Config{
			ID: fmt.Sprintf("n%d", i+1), GossipAddr: addrs[i], Join: join,
			PushPullInterval: 500 * time.Millisecond, GossipInterval: 50 * time.Millisecond,
		}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		server := httptest.NewServer(node.Handler())
		servers = append(servers, server)
		t.Cleanup(func() { server.Close(); _ = node.Close() })
	}
	return servers
}

func read(t *testing.T, url, key string) (Entry, int) {
	t.Helper()
	resp, err := http.Get(url + "/kv/" + key)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var entry Entry
	_ = json.NewDecoder(resp.Body).Decode(&entry)
	return entry, resp.StatusCode
}

func put(t *testing.T, url, key, value string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, url+"/kv/"+key, strings.NewReader(value))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestWriteConvergesOnEveryNode(t *testing.T) {
	servers := startCluster(t, 3)
	if code := put(t, servers[0].URL, "k", "v1"); code != 200 {
		t.Fatalf("put: got %d, want 200", code)
	}
	if code := put(t, servers[2].URL, "k", "v2"); code != 200 {
		t.Fatalf("put: got %d, want 200", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, server := range servers {
		for {
			entry, _ := read(t, server.URL, "k")
			if entry.Value == "v2" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still reads %q after 10 s, want v2", server.URL, entry.Value)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func TestBadInput(t *testing.T) {
	servers := startCluster(t, 1)
	if code := put(t, servers[0].URL, "k", strings.Repeat("x", maxValueBytes+1)); code != 413 {
		t.Fatalf("oversized value: got %d, want 413", code)
	}
	if _, code := read(t, servers[0].URL, "absent"); code != 404 {
		t.Fatalf("absent key: got %d, want 404", code)
	}
	if _, code := read(t, servers[0].URL, ""); code != 400 {
		t.Fatalf("empty key: got %d, want 400", code)
	}
}

func TestLastWriteWins(t *testing.T) {
	tests := []struct {
		name        string
		local, peer Entry
		peerWins    bool
	}{
		{"higher version", Entry{Version: 1, Writer: "b"}, Entry{Version: 2, Writer: "a"}, true},
		{"lower version", Entry{Version: 3, Writer: "a"}, Entry{Version: 2, Writer: "b"}, false},
		{"tie, higher writer", Entry{Version: 2, Writer: "a"}, Entry{Version: 2, Writer: "b"}, true},
		{"same entry", Entry{Version: 2, Writer: "a"}, Entry{Version: 2, Writer: "a"}, false},
	}
	for _, tt := range tests {
		c := &cache{data: map[string]Entry{}}
		tt.local.Key, tt.peer.Key = "k", "k"
		c.merge(tt.local)
		if got := c.merge(tt.peer); got != tt.peerWins {
			t.Errorf("%s: merge returned %v, want %v", tt.name, got, tt.peerWins)
		}
		if c.clock < tt.peer.Version {
			t.Errorf("%s: clock %d did not advance to %d", tt.name, c.clock, tt.peer.Version)
		}
	}
}
