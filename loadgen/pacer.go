package loadgen

import (
	"context"
	"sync"
	"time"
)

// pacer spaces the requests of all clients evenly to a total rate. Each
// request takes the next free slot, one interval after the previous slot;
// a slot that would lie in the past is moved to now, so time the clients
// were too busy to use is lost rather than banked: after a slow spell the
// rate does not overshoot to catch up.
type pacer struct {
	interval time.Duration

	mu struct {
		sync.Mutex
		next time.Time // the next free slot
	}
}

func newPacer(rate float64, start time.Time) *pacer {
	p := &pacer{interval: max(time.Duration(float64(time.Second)/rate), 1)}
	p.mu.next = start
	return p
}

// slot reserves the next free send time.
func (p *pacer) slot() time.Time {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.mu.next
	if t.Before(now) {
		t = now
	}
	p.mu.next = t.Add(p.interval)
	return t
}

// wait reserves a slot and sleeps until it. It returns false, at once,
// when the slot is at or after end, and false when ctx ends first.
func (p *pacer) wait(ctx context.Context, end time.Time) bool {
	t := p.slot()
	if !t.Before(end) {
		return false
	}
	d := time.Until(t)
	if d <= 0 {
		return true
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}
