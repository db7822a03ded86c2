// Command gossipcache is the consistency chapter's leaderless replicated
// cache in Go: every node accepts writes, and hashicorp/memberlist spreads
// them by gossip. Each value carries a version (a Lamport clock, ties broken
// by the writer's id), and the highest version wins everywhere (last write
// wins). Gossip is best effort: a node that missed a message (paused, say)
// catches up through memberlist's periodic push/pull of the whole state,
// the anti-entropy. Until then it answers reads with an older value: the
// cache is eventually consistent, and the chapter counts those stale reads.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/memberlist"
)

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

// Config is what one node needs: who it is, where it gossips and whom to
// join.
type Config struct {
	ID         string
	GossipAddr string   // 127.0.0.1:PORT, TCP and UDP
	Join       []string // other nodes' gossip addresses; any one that answers will do
	// PushPullInterval is how often a node swaps its whole state with a
	// random peer: the bound on how long a missed update stays missed.
	PushPullInterval time.Duration
	GossipInterval   time.Duration
}

// Entry is one versioned value.
type Entry struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Version uint64 `json:"version"`
	Writer  string `json:"writer"`
}

// newer reports whether e wins over other under last-write-wins.
func (e Entry) newer(other Entry) bool {
	if e.Version != other.Version {
		return e.Version > other.Version
	}
	return e.Writer > other.Writer
}

// cache is the node's replica.
type cache struct {
	mu    sync.RWMutex // guards data and clock
	data  map[string]Entry
	clock uint64 // the highest version seen: a Lamport clock
}

// Node is one running member.
type Node struct {
	cfg     Config
	cache   *cache
	members *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue
}

// update is one write travelling by gossip; a newer write to the same key
// replaces it in the send queue (memberlist.NamedBroadcast).
type update struct {
	key  string
	body []byte
}

func (u *update) Name() string                                { return u.key }
func (u *update) Invalidates(other memberlist.Broadcast) bool { return false }
func (u *update) Message() []byte                             { return u.body }
func (u *update) Finished()                                   {}

// ---------------------------------------------------------------------------
// The replica
// ---------------------------------------------------------------------------

// write makes a new local version of key and returns it.
func (c *cache) write(key, value, writer string) Entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clock++
	entry := Entry{Key: key, Value: value, Version: c.clock, Writer: writer}
	c.data[key] = entry
	return entry
}

// merge keeps whichever of the local and remote entry wins; it reports
// whether the remote one did.
func (c *cache) merge(remote Entry) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if remote.Version > c.clock {
		c.clock = remote.Version
	}
	local, ok := c.data[remote.Key]
	if ok && !remote.newer(local) {
		return false
	}
	c.data[remote.Key] = remote
	return true
}

func (c *cache) get(key string) (Entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	entry, ok := c.data[key]
	return entry, ok
}

func (c *cache) snapshot() []Entry {
	c.mu.RLock()
	defer c.mu.RUnlock()
	entries := make([]Entry, 0, len(c.data))
	for _, e := range c.data {
		entries = append(entries, e)
	}
	return entries
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.data)
}

// ---------------------------------------------------------------------------
// memberlist.Delegate: how the replica rides on gossip
// ---------------------------------------------------------------------------

// delegate adapts the node to memberlist's callbacks.
type delegate struct{ node *Node }

func (d delegate) NodeMeta(limit int) []byte { return nil }

// NotifyMsg receives one gossiped write.
func (d delegate) NotifyMsg(msg []byte) {
	var entry Entry
	if json.Unmarshal(msg, &entry) == nil && entry.Key != "" {
		d.node.cache.merge(entry)
	}
}

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.node.queue.GetBroadcasts(overhead, limit)
}

// LocalState is this node's half of a push/pull: the whole replica.
func (d delegate) LocalState(join bool) []byte {
	state, _ := json.Marshal(d.node.cache.snapshot())
	return state
}

// MergeRemoteState is the other half: every entry of the peer's replica.
func (d delegate) MergeRemoteState(buf []byte, join bool) {
	var entries []Entry
	if json.Unmarshal(buf, &entries) != nil {
		return
	}
	for _, e := range entries {
		d.node.cache.merge(e)
	}
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

func writeJSON(w http.ResponseWriter, status int, body interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status int, kind, detail string) {
	writeJSON(w, status, map[string]string{"error": kind, "detail": detail})
}

// Handler routes the node's HTTP API.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/kv/", n.handleKV)
	mux.HandleFunc("/status", n.handleStatus)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	})
	return mux
}

func (n *Node) handleKV(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimPrefix(r.URL.Path, "/kv/")
	if key == "" || len(key) > maxKeyBytes {
		writeError(w, http.StatusBadRequest, "bad_key",
			fmt.Sprintf("the key must be 1 to %d bytes", maxKeyBytes))
		return
	}
	switch r.Method {
	case http.MethodPut:
		value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
		if err != nil {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("the value must be at most %d bytes: it travels in one UDP packet",
					maxValueBytes))
			return
		}
		entry := n.cache.write(key, string(value), n.cfg.ID)
		body, _ := json.Marshal(entry)
		n.queue.QueueBroadcast(&update{key: key, body: body})
		// Acknowledged once this one node has it: that is what leaderless
		// and eventually consistent mean.
		writeJSON(w, http.StatusOK, map[string]interface{}{
			"key": key, "version": entry.Version, "node": n.cfg.ID,
		})
	case http.MethodGet:
		entry, ok := n.cache.get(key)
		if !ok {
			writeError(w, http.StatusNotFound, "no_such_key", "no value for key "+key)
			return
		}
		writeJSON(w, http.StatusOK, entry)
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"use GET or PUT on /kv/{key}")
	}
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"id":      n.cfg.ID,
		"members": n.members.NumMembers(),
		"keys":    n.cache.len(),
		"engine":  "hashicorp/memberlist",
	})
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

const (
	maxKeyBytes     = 256
	maxValueBytes   = 512 // a gossiped write must fit one UDP packet (1,400 bytes)
	joinTimeout     = 10 * time.Second
	leaveTimeout    = time.Second
	shutdownTimeout = 4 * time.Second
)

// ---------------------------------------------------------------------------
// Start and graceful shutdown
// ---------------------------------------------------------------------------

// StartNode creates the memberlist and joins whichever peers answer. The
// first node finds nobody, which is fine: the others join it.
func StartNode(cfg Config, logOutput io.Writer) (*Node, error) {
	host, portText, err := net.SplitHostPort(cfg.GossipAddr)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr %q: %v", cfg.GossipAddr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("the gossip address %s is not on loopback", cfg.GossipAddr)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr port %q: %v", portText, err)
	}
	node := &Node{cfg: cfg, cache: &cache{data: map[string]Entry{}}}

	conf := memberlist.DefaultLocalConfig()
	conf.Name = cfg.ID
	conf.BindAddr, conf.BindPort = host, port
	conf.AdvertiseAddr, conf.AdvertisePort = host, port
	conf.PushPullInterval = cfg.PushPullInterval
	conf.GossipInterval = cfg.GossipInterval
	conf.Delegate = delegate{node}
	conf.LogOutput = logOutput
	members, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("starting memberlist: %v", err)
	}
	node.members = members
	node.queue = &memberlist.TransmitLimitedQueue{
		NumNodes:       members.NumMembers,
		RetransmitMult: conf.RetransmitMult,
	}
	if len(cfg.Join) > 0 {
		deadline := time.Now().Add(joinTimeout)
		for {
			if _, err := members.Join(cfg.Join); err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return node, nil
}

// Close leaves the cluster politely, then stops gossiping.
func (n *Node) Close() error {
	_ = n.members.Leave(leaveTimeout)
	return n.members.Shutdown()
}

func main() {
	port := flag.Int("port", 0, "HTTP port on 127.0.0.1 (0: the OS picks)")
	id := flag.String("id", "", "this node's name")
	gossipAddr := flag.String("gossip-addr", "", "127.0.0.1:PORT for memberlist (TCP and UDP)")
	join := flag.String("join", "", "other nodes' gossip addresses, comma-separated")
	pushPullMs := flag.Int("push-pull-ms", 2000, "anti-entropy interval: whole-state exchange")
	gossipMs := flag.Int("gossip-ms", 100, "how often queued writes are gossiped")
	flag.Parse()

	logger := log.New(os.Stderr, "gossipcache ", log.LstdFlags)
	if *id == "" {
		logger.Fatal("--id is required")
	}
	var peers []string
	for _, addr := range strings.Split(*join, ",") {
		if addr = strings.TrimSpace(addr); addr != "" {
			peers = append(peers, addr)
		}
	}
	node, err := StartNode(Config{
		ID: *id, GossipAddr: *gossipAddr, Join: peers,
		PushPullInterval: time.Duration(*pushPullMs) * time.Millisecond,
		GossipInterval:   time.Duration(*gossipMs) * time.Millisecond,
	}, os.Stderr)
	if err != nil {
		logger.Fatalf("%v", err)
	}

	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		logger.Fatalf("listening: %v", err)
	}
	server := &http.Server{Handler: node.Handler(), ReadHeaderTimeout: 5 * time.Second}
	fmt.Printf("listening on %s\n", listener.Addr())
	_ = os.Stdout.Sync()

	served := make(chan error, 1)
	go func() { served <- server.Serve(listener) }()
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-signals:
		logger.Printf("shutting down on %v", sig)
	case err := <-served:
		logger.Printf("server stopped: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	_ = server.Shutdown(ctx)
	if err := node.Close(); err != nil {
		logger.Printf("stopping memberlist: %v", err)
	}
}
