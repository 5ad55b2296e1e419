package loadgen

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Prepopulate writes every key of cfg's key space once, with values of
// cfg's size, so that reads find them. concurrency clients write at once
// (at least 1), using the stores in turn as Run does. It stops at the
// first failure, after the writes in flight return, and reports it.
func Prepopulate(ctx context.Context, cfg Config, stores []Store, concurrency int) error {
	if err := cfg.validateFor(stores); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	concurrency = max(1, min(concurrency, cfg.Keys))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64 // the next key to write
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for i := range concurrency {
		store := stores[i%len(stores)]
		value := make([]byte, cfg.ValueSize)
		rng := rand.New(rand.NewPCG(cfg.Seed, uint64(i)))
		for j := range value {
			value[j] = byte(rng.Uint32())
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= cfg.Keys {
					return
				}
				key := KeyOf(cfg.KeyPrefix, k)
				octx, ocancel := context.WithTimeout(ctx, cfg.OpTimeout)
				err := store.Put(octx, key, value)
				ocancel()
				if err != nil {
					errOnce.Do(func() {
						firstErr = fmt.Errorf("loadgen: prepopulate %q: %w", key, err)
						cancel()
					})
					return
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
