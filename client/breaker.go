package client

import (
	"sync"
	"time"
)

// breaker is one node's circuit breaker.
//
// Closed, it lets every attempt through and counts consecutive failures. At
// the threshold it opens: the node is skipped until the cooldown is over.
// Then it lets attempts through again (half-open); the next failure reopens
// it at once with the cooldown doubled (up to the maximum), and a success
// closes it and resets the cooldown.
type breaker struct {
	mu struct {
		sync.Mutex
		failures  int           // consecutive failures
		openUntil time.Time     // skip the node before this time
		cooldown  time.Duration // the next opening's length
	}
}

// breakers holds a breaker per node address.
type breakers struct {
	threshold   int
	cooldown    time.Duration // the first opening's length
	maxCooldown time.Duration
	now         func() time.Time // time.Now, but for tests

	mu struct {
		sync.Mutex
		byAddr map[string]*breaker // never shrinks: one per address ever used
	}
}

func newBreakers(threshold int, cooldown time.Duration) *breakers {
	b := &breakers{
		threshold:   threshold,
		cooldown:    cooldown,
		maxCooldown: max(cooldown, MaxBreakerCooldown),
		now:         time.Now,
	}
	b.mu.byAddr = make(map[string]*breaker)
	return b
}

func (b *breakers) get(addr string) *breaker {
	b.mu.Lock()
	defer b.mu.Unlock()
	br := b.mu.byAddr[addr]
	if br == nil {
		br = &breaker{}
		br.mu.cooldown = b.cooldown
		b.mu.byAddr[addr] = br
	}
	return br
}

// allow reports whether an attempt may go to addr now.
func (b *breakers) allow(addr string) bool {
	br := b.get(addr)
	br.mu.Lock()
	defer br.mu.Unlock()
	return !b.now().Before(br.mu.openUntil)
}

// success records that addr answered; it closes its breaker.
func (b *breakers) success(addr string) {
	br := b.get(addr)
	br.mu.Lock()
	defer br.mu.Unlock()
	br.mu.failures = 0
	br.mu.openUntil = time.Time{}
	br.mu.cooldown = b.cooldown
}

// failure records that an attempt to addr failed. It reports whether that
// opened the breaker, and for how long.
func (b *breakers) failure(addr string) (opened bool, cooldown time.Duration) {
	br := b.get(addr)
	br.mu.Lock()
	defer br.mu.Unlock()
	br.mu.failures++
	now := b.now()
	if br.mu.failures < b.threshold || now.Before(br.mu.openUntil) {
		// Not yet at the threshold, or already open: a failure of an
		// attempt that started before the breaker opened.
		return false, 0
	}
	cooldown = br.mu.cooldown
	br.mu.openUntil = now.Add(cooldown)
	br.mu.cooldown = min(2*cooldown, b.maxCooldown)
	return true, cooldown
}
