package nemesis

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// Span is a range of durations; a draw is uniform in [Min, Max].
type Span struct {
	Min, Max time.Duration
}

func (s Span) draw(rng *rand.Rand) time.Duration {
	if s.Max <= s.Min {
		return s.Min
	}
	return s.Min + time.Duration(rng.Int64N(int64(s.Max-s.Min)+1))
}

// Schedule says when faults happen: a quiet spell, a fault held for a
// while, healed, and again.
type Schedule struct {
	// Quiet is how long the cluster runs unharmed before each fault.
	Quiet Span
	// Hold is how long each fault stays.
	Hold Span
}

// DefaultSchedule suits the short Raft timers of jepsen-lite runs (500 ms
// election timeout): faults from 1 s to 8 s, and 2-5 s to recover in
// between. The long ones are several elections' worth; the short ones end
// while operations sent to the victim are still within their deadline, so
// a paused leader that resumes answers reads invoked after the new leader's
// writes: the window a stale leader could serve stale reads in.
func DefaultSchedule() Schedule {
	return Schedule{Quiet: Span{2 * time.Second, 5 * time.Second}, Hold: Span{1 * time.Second, 8 * time.Second}}
}

// healTimeout bounds healing one fault.
const healTimeout = 30 * time.Second

// Run injects faults from n into c on schedule s until ctx ends, recording
// each start and stop in tl. A fault is healed before the next starts, and
// the one in place when ctx ends is healed before Run returns, with a
// context of its own so that a cancelled run still heals. An Inject that
// fails is recorded and skipped.
func Run(ctx context.Context, n Nemesis, c Cluster, s Schedule, rng *rand.Rand, tl *history.Timeline, log *slog.Logger) {
	for id := 1; ; id++ {
		if !wait(ctx, s.Quiet.draw(rng)) {
			return
		}
		f, err := n.Inject(ctx, c, rng)
		if err != nil {
			log.Warn("nemesis: inject failed", "nemesis", n.Name(), "err", err)
			tl.Add(history.Event{Type: history.FaultError, Fault: id, Nemesis: n.Name(), Desc: "inject", Error: err.Error()})
			continue
		}
		log.Info("nemesis: fault", "id", id, "desc", f.Desc)
		tl.Add(history.Event{Type: history.FaultStart, Fault: id, Nemesis: n.Name(), Kind: f.Kind, Desc: f.Desc, Nodes: f.Nodes})
		wait(ctx, s.Hold.draw(rng))

		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), healTimeout)
		err = f.Heal(hctx)
		cancel()
		if err != nil {
			log.Warn("nemesis: heal failed", "id", id, "err", err)
			tl.Add(history.Event{Type: history.FaultError, Fault: id, Nemesis: n.Name(), Kind: f.Kind, Desc: "heal: " + f.Desc, Error: err.Error()})
		}
		log.Info("nemesis: healed", "id", id)
		tl.Add(history.Event{Type: history.FaultStop, Fault: id, Nemesis: n.Name(), Kind: f.Kind, Desc: f.Desc, Nodes: f.Nodes})
		if ctx.Err() != nil {
			return
		}
	}
}

// wait waits for d or until ctx ends; it reports whether ctx is still live.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
