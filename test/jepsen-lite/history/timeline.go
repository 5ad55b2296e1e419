package history

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Event types of the nemesis timeline.
const (
	// FaultStart: a fault was injected.
	FaultStart = "start"
	// FaultStop: a fault was healed.
	FaultStop = "stop"
	// FaultError: injecting or healing a fault failed.
	FaultError = "error"
	// Note: anything else worth seeing next to the faults (the final
	// heal, the cluster becoming healthy).
	Note = "note"
	// Member: a change of the cluster's membership, as the cluster
	// reports it or as the harness made it: a node that appears in the
	// member list, changes state (Kind holds the new one: joining,
	// active, draining, dead), leaves it (Kind "left"), or whose process
	// and host the harness removed after it left (Kind "stopped").
	Member = "member"
)

// Event is one line of the nemesis timeline.
type Event struct {
	// T is the time on the run's Clock, in nanoseconds.
	T int64 `json:"t_ns"`
	// Wall is the wall-clock time of T.
	Wall time.Time `json:"wall"`
	// Type is FaultStart, FaultStop, FaultError, Note or Member.
	Type string `json:"type"`
	// Fault numbers the faults of a run from 1; a FaultStop has the
	// number of the FaultStart it ends. 0 for notes.
	Fault int `json:"fault,omitempty"`
	// Nemesis is the name of the nemesis that acted.
	Nemesis string `json:"nemesis,omitempty"`
	// Kind is the fault's kind ("partition", "kill", "pause", "join",
	// "remove"); for a Member event, the member's new state.
	Kind string `json:"kind,omitempty"`
	// Desc says what happened, e.g. "isolate n2 (leader of shard 5)".
	Desc string `json:"desc,omitempty"`
	// Nodes are the nodes the fault acts on; for a Member event, the
	// member.
	Nodes []string `json:"nodes,omitempty"`
	// Epoch is the cluster metadata epoch a Member event was seen at.
	Epoch uint64 `json:"epoch,omitempty"`
	// Error is the error of a FaultError.
	Error string `json:"error,omitempty"`
}

// Timeline collects the nemesis's events. Each one is also written to w as
// a JSON line at once. It is safe for concurrent use.
type Timeline struct {
	clock *Clock
	mu    struct {
		sync.Mutex
		events []Event
		w      *bufio.Writer // nil when there is no output
		err    error
	}
}

// NewTimeline returns a Timeline on clock that writes to w (nil: nowhere).
func NewTimeline(clock *Clock, w io.Writer) *Timeline {
	t := &Timeline{clock: clock}
	if w != nil {
		t.mu.w = bufio.NewWriter(w)
	}
	return t
}

// Add records e, stamping it with the current time, and returns it.
func (t *Timeline) Add(e Event) Event {
	e.T = t.clock.Now()
	e.Wall = t.clock.Wall(e.T)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.mu.events = append(t.mu.events, e)
	if t.mu.w != nil && t.mu.err == nil {
		b, err := json.Marshal(e)
		if err == nil {
			b = append(b, '\n')
			if _, err = t.mu.w.Write(b); err == nil {
				err = t.mu.w.Flush() // faults are few; keep the file current
			}
		}
		t.mu.err = err
	}
	return e
}

// Events returns a copy of the events recorded so far.
func (t *Timeline) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Event(nil), t.mu.events...)
}

// Flush writes out buffered lines and returns the first write error.
func (t *Timeline) Flush() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.w != nil && t.mu.err == nil {
		t.mu.err = t.mu.w.Flush()
	}
	return t.mu.err
}

// Interval is a fault's span on the run's Clock, or (Fault 0, Start = End)
// a membership event's point (see Marks).
type Interval struct {
	Fault      int
	Nemesis    string
	Kind       string
	Desc       string
	Start, End int64 // End is the heal, or the last event when never healed
}

// Marks returns the Member events as points: intervals that start and end
// at the event, with Fault 0.
func Marks(events []Event) []Interval {
	var out []Interval
	for _, e := range events {
		if e.Type == Member {
			out = append(out, Interval{Kind: e.Kind, Desc: e.Desc, Start: e.T, End: e.T})
		}
	}
	return out
}

// Intervals pairs each FaultStart in events with its FaultStop. A fault
// without a stop ends at end.
func Intervals(events []Event, end int64) []Interval {
	var out []Interval
	open := map[int]int{} // fault number -> index in out
	for _, e := range events {
		switch e.Type {
		case FaultStart:
			open[e.Fault] = len(out)
			out = append(out, Interval{Fault: e.Fault, Nemesis: e.Nemesis, Kind: e.Kind, Desc: e.Desc, Start: e.T, End: -1})
		case FaultStop:
			if i, ok := open[e.Fault]; ok {
				out[i].End = e.T
				delete(open, e.Fault)
			}
		}
	}
	for i := range out {
		if out[i].End < 0 {
			out[i].End = end
		}
	}
	return out
}
