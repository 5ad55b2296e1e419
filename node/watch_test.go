package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
)

// watchRecorder collects a watch's events and positions.
type watchRecorder struct {
	mu     sync.Mutex
	events map[string][]uint64 // versions per key, in arrival order
	pos    map[uint32]uint64   // last position per shard
	err    error
	done   chan struct{}
}

func startWatch(ctx context.Context, cl *client.Client, prefix string, start map[uint32]uint64) *watchRecorder {
	w := &watchRecorder{events: map[string][]uint64{}, pos: map[uint32]uint64{}, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for ev, err := range cl.Watch(ctx, []byte(prefix), client.WatchOptions{Prefix: true, Progress: true, StartAfter: start}) {
			w.mu.Lock()
			if err != nil {
				w.err = err
				w.mu.Unlock()
				return
			}
			if ev.Type == client.EventPut {
				w.events[string(ev.Key)] = append(w.events[string(ev.Key)], ev.Version)
			}
			w.pos[ev.Shard] = max(w.pos[ev.Shard], ev.Version)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *watchRecorder) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, v := range w.events {
		n += len(v)
	}
	return n
}

// check compares what the watch saw with what the writer wrote: every
// write exactly once, in order per key.
func (w *watchRecorder) check(t *testing.T, wrote map[string][]uint64) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		t.Fatalf("watch ended with %v", w.err)
	}
	for k, want := range wrote {
		if got := w.events[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("key %s: watch saw versions %v; the writer wrote %v", k, got, want)
		}
	}
	for k := range w.events {
		if _, ok := wrote[k]; !ok {
			t.Errorf("watch saw key %s that was not written", k)
		}
	}
}

// A watcher sees every event of a writer, in order, exactly once, across
// the death of a node (leaders move, streams break), and a new watch
// resumes from the last positions of the first without loss or repeats.
func TestWatchAcrossNodeDeathAndResume(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 4})
	writer, watcher := c.client(t), c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	wctx, stopWatch := context.WithCancel(ctx)
	w := startWatch(wctx, watcher, "w/", nil)
	// Wait until the watch has started on every shard (its first
	// responses), so that every write below comes after it.
	waitFor(t, 30*time.Second, "the watch to start on every shard", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.pos) == 4 || w.err != nil
	})

	wrote := map[string][]uint64{}
	write := func(n, from int) {
		for i := from; i < from+n; i++ {
			k := fmt.Sprintf("w/%02d", i%20)
			v, err := writer.Put(ctx, []byte(k), []byte(fmt.Sprint(i)))
			if err != nil {
				t.Fatalf("put %d: %v", i, err)
			}
			wrote[k] = append(wrote[k], v)
		}
	}
	write(100, 0)
	c.stop(0) // leaders move; a stream served by n1 breaks
	write(100, 100)
	waitFor(t, 60*time.Second, "the watch to see all 200 writes", func() bool { return w.count() >= 200 })
	stopWatch()
	<-w.done
	w.err = nil // the cancellation ends it
	w.check(t, wrote)

	// Resume from the first watch's positions: exactly the new writes.
	w.mu.Lock()
	positions := w.pos
	w.mu.Unlock()
	wrote2 := map[string][]uint64{}
	w2ctx, stopWatch2 := context.WithCancel(ctx)
	defer stopWatch2()
	w2 := startWatch(w2ctx, watcher, "w/", positions)
	wrote = wrote2
	write(50, 200)
	waitFor(t, 60*time.Second, "the resumed watch to see the 50 new writes", func() bool { return w2.count() >= 50 })
	stopWatch2()
	<-w2.done
	w2.err = nil
	w2.check(t, wrote2)
}
