package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// freeAddr is a loopback address the OS picked, closed again for raft to bind.
func freeAddr(t *testing.T) string {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().String()
}

type testNode struct {
	node *Node
	http *httptest.Server
	dead bool
}

func startCluster(t *testing.T, size int, alloc int64) []*testNode {
	t.Helper()
	peers := map[string]string{}
	for i := 1; i <= size; i++ {
		peers[fmt.Sprintf("n%d", i)] = freeAddr(t)
	}
	nodes := make([]*testNode, 0, size)
	for i := 1; i <= size; i++ {
		id := fmt.Sprintf("n%d", i)
		node, err := StartNode(Config{
			ID: id, RaftAddr: peers[id], Peers: peers,
			ElectionTimeout: 300 * time.Millisecond,
			AllocBytesPerS:  alloc, AllocLiveBytes: 1 << 20,
		}, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &testNode{node: node, http: httptest.NewServer(node.Handler())})
	}
	t.Cleanup(func() {
		for _, n := range nodes {
			if !n.dead {
				n.http.Close()
				_ = n.node.Close()
			}
		}
	})
	return nodes
}

func status(t *testing.T, n *testNode) map[string]interface{} {
	t.Helper()
	resp, err := http.Get(n.http.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]interface{}{}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body
}

func waitLeader(t *testing.T, nodes []*testNode) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for i, n := range nodes {
			if !n.dead && status(t, n)["role"] == "leader" {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no leader within 10 s")
	return -1
}

func put(client *http.Client, url, key, value string) (int, error) {
	req, _ := http.NewRequest(http.MethodPut, url+"/kv/"+key, strings.NewReader(value))
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestWriteReadAndRefusals(t *testing.T) {
	nodes := startCluster(t, 3, 0)
	leader := waitLeader(t, nodes)
	client := &http.Client{Timeout: 3 * time.Second}
	if code, err := put(client, nodes[leader].http.URL, "k", "v"); err != nil || code != 200 {
		t.Fatalf("put on the leader: got %d %v, want 200", code, err)
	}
	follower := (leader + 1) % len(nodes)
	code, _ := put(client, nodes[follower].http.URL, "k", "w")
	if code != http.StatusMisdirectedRequest {
		t.Fatalf("put on a follower: got %d, want 421", code)
	}
	big := strings.Repeat("x", maxValueBytes+1)
	if code, _ := put(client, nodes[leader].http.URL, "k", big); code != 413 {
		t.Fatalf("oversized value: got %d, want 413", code)
	}
	resp, err := client.Get(nodes[leader].http.URL + "/kv/k?consistent=1")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	if got["value"] != "v" {
		t.Fatalf("read after write: got %q, want %q", got["value"], "v")
	}
	resp, _ = client.Get(nodes[leader].http.URL + "/kv/missing")
	resp.Body.Close()
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("missing key: got %d %s, want 404 JSON", resp.StatusCode,
			resp.Header.Get("Content-Type"))
	}
}

// TestLeaderKilledDuringWrites kills the leader while writers run, then
// reads every acknowledged write back from the new leader.
func TestLeaderKilledDuringWrites(t *testing.T) {
	nodes := startCluster(t, 3, 8<<20)
	client := &http.Client{Timeout: 3 * time.Second}
	var mu sync.Mutex // guards leader, acked
	leader := waitLeader(t, nodes)
	acked := map[string]string{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 100_000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, value := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
				mu.Lock()
				url := nodes[leader].http.URL
				mu.Unlock()
				if code, err := put(client, url, key, value); err == nil && code == 200 {
					mu.Lock()
					acked[key] = value
					mu.Unlock()
				} else {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}(w)
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor := func(n int) {
		deadline := time.Now().Add(15 * time.Second)
		for count() < n && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(200)

	mu.Lock()
	old := nodes[leader]
	old.dead = true
	mu.Unlock()
	killedAt := time.Now()
	old.http.CloseClientConnections()
	old.http.Close()
	_ = old.node.Close()
	before := count()

	newLeader := waitLeader(t, nodes)
	mu.Lock()
	leader = newLeader
	mu.Unlock()
	waitFor(before + 200)
	close(stop)
	wg.Wait()
	t.Logf("failover took %v; %d writes acknowledged", time.Since(killedAt), count())
	if count() < before+200 {
		t.Fatalf("the new leader acknowledged only %d writes after the failover", count()-before)
	}

	for key, value := range acked {
		resp, err := client.Get(nodes[leader].http.URL + "/kv/" + key + "?consistent=1")
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if got["value"] != value {
			t.Fatalf("acknowledged write %s lost: got %q, want %q", key, got["value"], value)
		}
	}
}

func TestHeartbeatGapsRecorded(t *testing.T) {
	nodes := startCluster(t, 3, 0)
	leader := waitLeader(t, nodes)
	time.Sleep(500 * time.Millisecond)
	follower := nodes[(leader+1)%len(nodes)]
	gaps := follower.node.transport.takeGaps()
	if len(gaps) < 3 {
		t.Fatalf("a follower recorded %d heartbeat gaps in 500 ms, want at least 3", len(gaps))
	}
}

func TestParsePeers(t *testing.T) {
	peers, err := parsePeers("a=127.0.0.1:1, b=127.0.0.1:2")
	if err != nil || len(peers) != 2 || peers["b"] != "127.0.0.1:2" {
		t.Fatalf("got %v %v", peers, err)
	}
	if _, err := parsePeers("a"); err == nil {
		t.Fatal("a peer without an address was accepted")
	}
}
