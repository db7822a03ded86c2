// Command raftkv is the consistency chapter's replicated key-value store in
// Go: one node of a Raft cluster built on hashicorp/raft. A write is
// acknowledged only once a majority of the nodes has it in their log and the
// leader has applied it, so an acknowledged write survives the loss of any
// minority of nodes. Writes to a follower are refused with 421 and the
// leader's identity, so the client knows where to go.
//
// Each node also records the gaps between the heartbeats it receives from
// the leader: the chapter uses them to see whether Go's collector delays
// consensus timing when the node is busy allocating.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/raft"
)

// ---------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------

// Config is what one node needs to know: who it is, where its peers are and
// how impatient Raft should be.
type Config struct {
	ID       string
	RaftAddr string            // this node's Raft transport, 127.0.0.1:PORT
	Peers    map[string]string // every node's id -> Raft address, self included
	// ElectionTimeout is the follower's patience without a heartbeat; the
	// leader sends heartbeats at a tenth of it (hashicorp/raft's rule).
	ElectionTimeout time.Duration
	// AllocBytesPerS is garbage the node allocates per second on the side,
	// to put Go's collector to work while Raft keeps time; 0 disables it.
	AllocBytesPerS int64
	// AllocLiveBytes is the heap that side work keeps alive, so each
	// collection has a real graph to mark.
	AllocLiveBytes int64
}

// command is one entry of the replicated log.
type command struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// store is the state machine every node applies the log to.
type store struct {
	mu   sync.RWMutex // many readers, one applier
	data map[string]string
}

// Node is one running member of the cluster.
type Node struct {
	cfg       Config
	raft      *raft.Raft
	transport *heartbeatTransport
	store     *store
	stopAlloc chan struct{}
	allocDone sync.WaitGroup
}

// errorBody is the JSON every refusal carries.
type errorBody struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
	// On a write to a follower: who the leader is, if known.
	LeaderID   string `json:"leader_id,omitempty"`
	LeaderAddr string `json:"leader_raft_addr,omitempty"`
}

// ---------------------------------------------------------------------------
// The state machine (raft.FSM)
// ---------------------------------------------------------------------------

func (s *store) Apply(entry *raft.Log) interface{} {
	var cmd command
	if err := json.Unmarshal(entry.Data, &cmd); err != nil {
		return fmt.Errorf("decoding log entry %d: %v", entry.Index, err)
	}
	s.mu.Lock()
	s.data[cmd.Key] = cmd.Value
	s.mu.Unlock()
	return nil
}

func (s *store) get(key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	value, ok := s.data[key]
	return value, ok
}

func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.data)
}

func (s *store) Snapshot() (raft.FSMSnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	copied := make(map[string]string, len(s.data))
	for k, v := range s.data {
		copied[k] = v
	}
	return &snapshot{copied}, nil
}

func (s *store) Restore(reader io.ReadCloser) error {
	defer reader.Close()
	restored := map[string]string{}
	if err := json.NewDecoder(reader).Decode(&restored); err != nil {
		return fmt.Errorf("decoding snapshot: %v", err)
	}
	s.mu.Lock()
	s.data = restored
	s.mu.Unlock()
	return nil
}

type snapshot struct{ data map[string]string }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.data); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("writing snapshot: %v", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}

// ---------------------------------------------------------------------------
// Heartbeat timing
// ---------------------------------------------------------------------------

// heartbeatTransport is hashicorp/raft's TCP transport with one seam: the
// heartbeat handler is wrapped to note when each heartbeat arrives. Raft
// keeps every other method of the embedded transport.
type heartbeatTransport struct {
	*raft.NetworkTransport
	mu       sync.Mutex // guards the fields below
	leader   string     // whose heartbeats the last arrival time belongs to
	lastAt   time.Time
	gapsUs   []int64 // microseconds between consecutive heartbeats
	received atomic.Int64
}

func (t *heartbeatTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	t.NetworkTransport.SetHeartbeatHandler(func(rpc raft.RPC) {
		t.note(rpc)
		cb(rpc)
	})
}

func (t *heartbeatTransport) note(rpc raft.RPC) {
	req, ok := rpc.Command.(*raft.AppendEntriesRequest)
	if !ok {
		return
	}
	now := time.Now()
	leader := string(req.GetRPCHeader().Addr)
	t.received.Add(1)
	t.mu.Lock()
	defer t.mu.Unlock()
	// A gap across a change of leader measures the election, not a delay.
	if leader == t.leader && !t.lastAt.IsZero() && len(t.gapsUs) < maxGapSamples {
		t.gapsUs = append(t.gapsUs, now.Sub(t.lastAt).Microseconds())
	}
	t.leader, t.lastAt = leader, now
}

// takeGaps returns the gaps recorded since the last call and forgets them.
func (t *heartbeatTransport) takeGaps() []int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	gaps := t.gapsUs
	t.gapsUs = nil
	return gaps
}

// ---------------------------------------------------------------------------
// Allocation pressure
// ---------------------------------------------------------------------------

// garbage is a pointer-rich object, so the collector has to trace it.
type garbage struct {
	next    *garbage
	payload [allocObjectBytes - 8]byte
}

// allocate keeps AllocLiveBytes of objects alive and replaces them at
// AllocBytesPerS, in slices of allocTick, until stop is closed.
func (n *Node) allocate() {
	defer n.allocDone.Done()
	live := make([]*garbage, max(1, n.cfg.AllocLiveBytes/allocObjectBytes))
	perTick := max(1, n.cfg.AllocBytesPerS*int64(allocTick)/int64(time.Second)/allocObjectBytes)
	ticker := time.NewTicker(allocTick)
	defer ticker.Stop()
	slot := 0
	for {
		select {
		case <-n.stopAlloc:
			return
		case <-ticker.C:
		}
		for i := int64(0); i < perTick; i++ {
			// Each object points at the one allocated just before it, so
			// the collector traces pairs; the one it replaces is garbage.
			var previous *garbage
			if slot > 0 {
				previous = live[slot-1]
			}
			live[slot] = &garbage{next: previous}
			if previous != nil {
				previous.next = nil // no chain longer than two
			}
			slot = (slot + 1) % len(live)
		}
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
	writeJSON(w, status, errorBody{Error: kind, Detail: detail})
}

// Handler routes the node's HTTP API.
func (n *Node) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/kv/", n.handleKV)
	mux.HandleFunc("/status", n.handleStatus)
	mux.HandleFunc("/heartbeats", n.handleHeartbeats)
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
		n.put(w, r, key)
	case http.MethodGet:
		n.get(w, r, key)
	default:
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			"use GET or PUT on /kv/{key}")
	}
}

func (n *Node) notLeader(w http.ResponseWriter) {
	addr, id := n.raft.LeaderWithID()
	writeJSON(w, http.StatusMisdirectedRequest, errorBody{
		Error:      "not_leader",
		Detail:     "this node is not the leader; send writes to the leader",
		LeaderID:   string(id),
		LeaderAddr: string(addr),
	})
}

func (n *Node) put(w http.ResponseWriter, r *http.Request, key string) {
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxValueBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "body_too_large",
			fmt.Sprintf("the value must be at most %d bytes", maxValueBytes))
		return
	}
	if n.raft.State() != raft.Leader {
		n.notLeader(w)
		return
	}
	data, _ := json.Marshal(command{Key: key, Value: string(value)})
	future := n.raft.Apply(data, applyTimeout)
	if err := future.Error(); err != nil {
		// Leadership lost or not confirmed in time: the write may or may not
		// commit later, so it is not acknowledged.
		if errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) {
			n.notLeader(w)
			return
		}
		writeError(w, http.StatusServiceUnavailable, "not_committed", err.Error())
		return
	}
	if applyErr, ok := future.Response().(error); ok && applyErr != nil {
		writeError(w, http.StatusInternalServerError, "apply_failed", applyErr.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"key": key, "index": future.Index(), "node": n.cfg.ID,
	})
}

// get answers from this node's state machine. With ?consistent=1 the node
// must be the leader and first confirms, through a barrier, that it has
// applied everything committed before the read: a linearizable read.
func (n *Node) get(w http.ResponseWriter, r *http.Request, key string) {
	if r.URL.Query().Get("consistent") == "1" {
		if n.raft.State() != raft.Leader {
			n.notLeader(w)
			return
		}
		if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "not_confirmed", err.Error())
			return
		}
	}
	value, ok := n.store.get(key)
	if !ok {
		writeError(w, http.StatusNotFound, "no_such_key", "no value for key "+key)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"key": key, "value": value})
}

func (n *Node) handleStatus(w http.ResponseWriter, r *http.Request) {
	addr, id := n.raft.LeaderWithID()
	writeJSON(w, http.StatusOK, map[string]interface{}{
		"id":                  n.cfg.ID,
		"role":                strings.ToLower(n.raft.State().String()),
		"term":                n.raft.CurrentTerm(),
		"leader_id":           string(id),
		"leader_raft_addr":    string(addr),
		"commit_index":        n.raft.CommitIndex(),
		"applied_index":       n.raft.AppliedIndex(),
		"keys":                n.store.len(),
		"heartbeats":          n.transport.received.Load(),
		"election_timeout_ms": n.cfg.ElectionTimeout.Milliseconds(),
		"engine":              "hashicorp/raft",
	})
}

// handleHeartbeats hands over the gaps recorded since the last call.
func (n *Node) handleHeartbeats(w http.ResponseWriter, r *http.Request) {
	gaps := n.transport.takeGaps()
	if gaps == nil {
		gaps = []int64{}
	}
	writeJSON(w, http.StatusOK, map[string]interface{}{"gaps_us": gaps})
}

// ---------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------

const (
	maxKeyBytes      = 256
	maxValueBytes    = 64 * 1024
	maxGapSamples    = 200_000 // about an hour of heartbeats at 50 per second
	applyTimeout     = 2 * time.Second
	transportTimeout = 2 * time.Second
	transportPool    = 4
	allocObjectBytes = 256
	allocTick        = 10 * time.Millisecond
	shutdownTimeout  = 4 * time.Second
)

// ---------------------------------------------------------------------------
// Start and graceful shutdown
// ---------------------------------------------------------------------------

// StartNode builds the Raft node and bootstraps the cluster. Every node is
// given the same configuration, which hashicorp/raft allows, so no node is
// special at start.
func StartNode(cfg Config, logOutput io.Writer) (*Node, error) {
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(cfg.ID)
	conf.HeartbeatTimeout = cfg.ElectionTimeout
	conf.ElectionTimeout = cfg.ElectionTimeout
	conf.LeaderLeaseTimeout = cfg.ElectionTimeout / 2
	conf.LogOutput = logOutput
	conf.LogLevel = "WARN"

	advertise, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %v", cfg.RaftAddr, err)
	}
	if !advertise.IP.IsLoopback() {
		return nil, fmt.Errorf("the raft address %s is not on loopback", cfg.RaftAddr)
	}
	inner, err := raft.NewTCPTransport(cfg.RaftAddr, advertise, transportPool,
		transportTimeout, logOutput)
	if err != nil {
		return nil, fmt.Errorf("starting the raft transport: %v", err)
	}
	transport := &heartbeatTransport{NetworkTransport: inner}

	// In-memory log and stable store: a killed node does not come back in
	// this chapter, and durability comes from the majority, not the disk.
	logs := raft.NewInmemStore()
	fsm := &store{data: map[string]string{}}
	node, err := raft.NewRaft(conf, fsm, logs, logs, raft.NewInmemSnapshotStore(), transport)
	if err != nil {
		_ = inner.Close()
		return nil, fmt.Errorf("starting raft: %v", err)
	}
	ids := make([]string, 0, len(cfg.Peers))
	for id := range cfg.Peers {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	servers := make([]raft.Server, 0, len(ids))
	for _, id := range ids {
		servers = append(servers, raft.Server{
			ID: raft.ServerID(id), Address: raft.ServerAddress(cfg.Peers[id]),
		})
	}
	if err := node.BootstrapCluster(raft.Configuration{Servers: servers}).Error(); err != nil {
		_ = node.Shutdown().Error()
		_ = inner.Close()
		return nil, fmt.Errorf("bootstrapping: %v", err)
	}
	n := &Node{cfg: cfg, raft: node, transport: transport, store: fsm,
		stopAlloc: make(chan struct{})}
	if cfg.AllocBytesPerS > 0 {
		n.allocDone.Add(1)
		go n.allocate()
	}
	return n, nil
}

// Close stops Raft and its transport; the node is gone from the cluster.
func (n *Node) Close() error {
	close(n.stopAlloc)
	n.allocDone.Wait()
	err := n.raft.Shutdown().Error()
	if closeErr := n.transport.Close(); err == nil {
		err = closeErr
	}
	return err
}

// parsePeers reads "id=127.0.0.1:PORT,id=127.0.0.1:PORT".
func parsePeers(text string) (map[string]string, error) {
	peers := map[string]string{}
	for _, part := range strings.Split(text, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("peer %q is not id=host:port", part)
		}
		peers[id] = addr
	}
	return peers, nil
}

func main() {
	port := flag.Int("port", 0, "HTTP port on 127.0.0.1 (0: the OS picks)")
	id := flag.String("id", "", "this node's id, one of the ids in --peers")
	peersText := flag.String("peers", "", "every node: id=127.0.0.1:RAFTPORT,...")
	electionMs := flag.Int("election-timeout-ms", 300, "follower's patience without heartbeats")
	allocMBps := flag.Float64("alloc-mb-per-s", 0, "side allocation rate in MiB/s (0: none)")
	liveMB := flag.Float64("alloc-live-mb", 64, "heap the side allocation keeps alive, MiB")
	flag.Parse()

	logger := log.New(os.Stderr, "raftkv ", log.LstdFlags)
	peers, err := parsePeers(*peersText)
	if err != nil {
		logger.Fatalf("--peers: %v", err)
	}
	raftAddr, ok := peers[*id]
	if !ok {
		logger.Fatalf("--id %q is not among --peers", *id)
	}
	node, err := StartNode(Config{
		ID: *id, RaftAddr: raftAddr, Peers: peers,
		ElectionTimeout: time.Duration(*electionMs) * time.Millisecond,
		AllocBytesPerS:  int64(*allocMBps * (1 << 20)),
		AllocLiveBytes:  int64(*liveMB * (1 << 20)),
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
		logger.Printf("stopping raft: %v", err)
	}
}
