package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// Store is the seam between the HTTP handlers and where values live. The
// handlers see only this interface, so swapping the in-memory map for Redis
// changes one constructor call and no handler code.
//
// Values are treated as immutable once stored: Put keeps the slice it is
// given and Get may return that same slice, so callers must not modify either.
type Store interface {
	// Get returns the value and true, or nil and false when the key is absent.
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// Put creates or replaces the value under key.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// Len counts the keys currently stored.
	Len(ctx context.Context) (int, error)
	// Name is what /health reports, so a result records which store ran.
	Name() string
}

// RWMutexStore is a plain map under a sync.RWMutex: readers share the lock,
// a writer takes it alone. It is the textbook choice and the baseline that
// sync.Map is measured against.
type RWMutexStore struct {
	mu     sync.RWMutex
	values map[string][]byte // guarded by mu
}

// NewRWMutexStore returns an empty RWMutexStore.
func NewRWMutexStore() *RWMutexStore {
	return &RWMutexStore{values: make(map[string][]byte)}
}

func (s *RWMutexStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.RLock()
	value, ok := s.values[key]
	s.mu.RUnlock()
	return value, ok, nil
}

func (s *RWMutexStore) Put(_ context.Context, key string, value []byte) error {
	s.mu.Lock()
	s.values[key] = value
	s.mu.Unlock()
	return nil
}

func (s *RWMutexStore) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	delete(s.values, key)
	s.mu.Unlock()
	return nil
}

func (s *RWMutexStore) Len(_ context.Context) (int, error) {
	s.mu.RLock()
	n := len(s.values)
	s.mu.RUnlock()
	return n, nil
}

func (s *RWMutexStore) Name() string { return "rwmutex" }

// SyncMapStore wraps sync.Map, which the standard library documents as
// suited to keys written once and read many times. sync.Map has no length,
// so the store keeps its own count, changed only when Swap or LoadAndDelete
// report that a key appeared or disappeared.
type SyncMapStore struct {
	values sync.Map     // string -> []byte
	count  atomic.Int64 // number of keys in values
}

// NewSyncMapStore returns an empty SyncMapStore.
func NewSyncMapStore() *SyncMapStore {
	return &SyncMapStore{}
}

func (s *SyncMapStore) Get(_ context.Context, key string) ([]byte, bool, error) {
	value, ok := s.values.Load(key)
	if !ok {
		return nil, false, nil
	}
	return value.([]byte), true, nil
}

func (s *SyncMapStore) Put(_ context.Context, key string, value []byte) error {
	if _, replaced := s.values.Swap(key, value); !replaced {
		s.count.Add(1)
	}
	return nil
}

func (s *SyncMapStore) Delete(_ context.Context, key string) error {
	if _, existed := s.values.LoadAndDelete(key); existed {
		s.count.Add(-1)
	}
	return nil
}

func (s *SyncMapStore) Len(_ context.Context) (int, error) {
	return int(s.count.Load()), nil
}

func (s *SyncMapStore) Name() string { return "syncmap" }

// RedisStore keeps values in a Redis server. Keys are stored as given, and
// Len is DBSIZE, so the store expects a Redis database of its own (the bench
// starts a fresh redis-server for it).
type RedisStore struct {
	client *redis.Client
}

// NewRedisStore connects to the Redis server at addr and checks it answers
// within connectTimeout, so a wrong address fails at start-up rather than on
// the first request.
func NewRedisStore(ctx context.Context, addr string) (*RedisStore, error) {
	client := redis.NewClient(&redis.Options{
		Addr: addr,
		// RESP2 skips the HELLO handshake and its fallback: nothing here
		// needs RESP3, and Redis 7 speaks both.
		Protocol: 2,
		// Identity sent with CLIENT SETINFO is noise in a benchmark.
		DisableIdentity: true,
		// Maintenance notifications are a managed-Redis feature; a local
		// redis-server has none, so do not probe for them on connect.
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	pingCtx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("connecting to redis at %s: %w", addr, err)
	}
	return &RedisStore{client: client}, nil
}

func (s *RedisStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	value, err := s.client.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis GET: %w", err)
	}
	return value, true, nil
}

func (s *RedisStore) Put(ctx context.Context, key string, value []byte) error {
	// Expiration 0: values live until replaced or deleted, as in the maps.
	if err := s.client.Set(ctx, key, value, 0).Err(); err != nil {
		return fmt.Errorf("redis SET: %w", err)
	}
	return nil
}

func (s *RedisStore) Delete(ctx context.Context, key string) error {
	if err := s.client.Del(ctx, key).Err(); err != nil {
		return fmt.Errorf("redis DEL: %w", err)
	}
	return nil
}

func (s *RedisStore) Len(ctx context.Context) (int, error) {
	n, err := s.client.DBSize(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("redis DBSIZE: %w", err)
	}
	return int(n), nil
}

func (s *RedisStore) Name() string { return "redis" }

// Close releases the connection pool.
func (s *RedisStore) Close() error { return s.client.Close() }
