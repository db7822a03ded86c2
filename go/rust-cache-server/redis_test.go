package main

import (
	"context"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// redisStartTimeout bounds how long a test waits for its redis-server.
const redisStartTimeout = 5 * time.Second

// startRedis runs a throwaway redis-server on a free loopback port, with
// persistence off and its working directory in a temporary folder, and
// stops it when the test ends. It skips the test when redis-server is not
// installed, since the in-memory stores are tested without it.
func startRedis(t *testing.T) string {
	t.Helper()
	binary, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server is not on PATH; install it (apt-get install redis-server) to test the Redis store")
	}

	// redis-server cannot pick its own port: borrow one from the OS. Another
	// process could take it in between; that is rare enough for a test.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()

	cmd := exec.Command(binary,
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(redisStartTimeout)
	for {
		conn, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not accept within %v", addr, redisStartTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openRedisStore connects to addr and empties the database, so every
// handler case starts from the same state the in-memory stores do.
func openRedisStore(t *testing.T, addr string) *RedisStore {
	t.Helper()
	store, err := NewRedisStore(context.Background(), addr)
	if err != nil {
		t.Fatalf("NewRedisStore: %v", err)
	}
	if err := store.client.FlushDB(context.Background()).Err(); err != nil {
		t.Fatalf("FLUSHDB: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// TestRedisStore runs the same handler cases and round trip as the
// in-memory stores: the handlers do not know which store they talk to.
func TestRedisStore(t *testing.T) {
	addr := startRedis(t)
	t.Run("handlers", func(t *testing.T) {
		runHandlerCases(t, func(t *testing.T) Store { return openRedisStore(t, addr) })
	})
	t.Run("round trip", func(t *testing.T) {
		runRoundTrip(t, openRedisStore(t, addr))
	})
}

func TestRedisStoreUnreachable(t *testing.T) {
	// A port nothing listens on: bind one, then close it.
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	addr := probe.Addr().String()
	probe.Close()

	if _, err := NewRedisStore(context.Background(), addr); err == nil {
		t.Fatalf("NewRedisStore(%s) with nothing listening: got nil error, want one", addr)
	}
}
