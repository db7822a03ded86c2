package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

const (
	// benchKeyCount is how many keys the store holds during a benchmark;
	// writes replace existing keys, so the size stays fixed.
	benchKeyCount = 10_000
	// benchValueBytes is the size of every value, a small cached object.
	benchValueBytes = 128
)

// readPercents are the read/write mixes, as the percentage of reads.
var readPercents = []int{100, 90, 50, 10}

// BenchmarkStores measures the in-memory stores directly, without HTTP, at
// several read/write mixes from all GOMAXPROCS goroutines at once. Names
// read BenchmarkStores/STORE/readPCT, e.g. BenchmarkStores/syncmap/read90.
func BenchmarkStores(b *testing.B) {
	keys := make([]string, benchKeyCount)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%d", i)
	}
	value := make([]byte, benchValueBytes)

	for _, s := range memoryStores {
		for _, readPercent := range readPercents {
			name := fmt.Sprintf("%s/read%d", s.name, readPercent)
			b.Run(name, func(b *testing.B) {
				benchmarkMix(b, s.open(), keys, value, readPercent)
			})
		}
	}
}

func benchmarkMix(b *testing.B, store Store, keys []string, value []byte, readPercent int) {
	ctx := context.Background()
	for _, key := range keys {
		store.Put(ctx, key, value)
	}
	// Each goroutine gets its own seed so they do not walk the keys in step.
	var seeds atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		state := seeds.Add(1) * 0x9E3779B97F4A7C15
		op := 0
		for pb.Next() {
			// xorshift64: a cheap generator that needs no lock, unlike the
			// global math/rand source.
			state ^= state << 13
			state ^= state >> 7
			state ^= state << 17
			key := keys[state%benchKeyCount]
			// Counting ops rather than drawing a random number gives the
			// exact mix over every 100 operations.
			if op%100 < readPercent {
				store.Get(ctx, key)
			} else {
				store.Put(ctx, key, value)
			}
			op++
		}
	})
}
