// Package history records what a jepsen-lite run did: every client
// operation with its invocation time, completion time and outcome, and every
// fault the nemesis injected, all on one clock so that operations and faults
// line up. The checkers read the operations; the report writes both out.
package history

import (
	"bufio"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Clock measures a run's time: nanoseconds since the run started, on the
// monotonic clock. Operation and fault times share it.
type Clock struct {
	start time.Time
}

// NewClock returns a clock whose zero is now.
func NewClock() *Clock { return &Clock{start: time.Now()} }

// Start returns the wall-clock time of the clock's zero.
func (c *Clock) Start() time.Time { return c.start }

// Now returns the nanoseconds since the clock's zero.
func (c *Clock) Now() int64 { return int64(time.Since(c.start)) }

// Wall returns the wall-clock time of t, a time on this clock.
func (c *Clock) Wall(t int64) time.Time { return c.start.Add(time.Duration(t)) }

// Outcome is what a client knows about an operation once it completes.
type Outcome string

const (
	// OK: the operation happened, and its result is known.
	OK Outcome = "ok"
	// Fail: the operation definitely did not happen (the node rejected
	// the request itself, e.g. InvalidArgument, or a compare-and-swap's
	// comparison failed: then ConditionFailed is set too).
	Fail Outcome = "fail"
	// Unknown: the operation may or may not have happened (a timeout, a
	// lost connection, Unavailable at the deadline). A write with this
	// outcome may take effect at any later time.
	Unknown Outcome = "unknown"
)

// Kind is an operation's type.
type Kind string

const (
	// Read is a Get.
	Read Kind = "read"
	// Write is a Put.
	Write Kind = "write"
	// CAS is a compare-and-swap: it writes Value only if the key's value
	// is Old.
	CAS Kind = "cas"
)

// Workload names.
const (
	Register = "register"
	Set      = "set"
)

// Op is one client operation.
type Op struct {
	// Index numbers operations in order of completion, from 0.
	Index int `json:"index"`
	// Workload is Register or Set.
	Workload string `json:"workload"`
	// Process is the logical client that ran the operation. A worker
	// takes a new process number after an Unknown outcome, because the
	// old operation may still be in flight, as in Jepsen.
	Process int `json:"process"`
	// Kind is Read, Write or CAS.
	Kind Kind `json:"kind"`
	// Key is the key.
	Key string `json:"key"`
	// Value is the value written (the new value of a CAS), or the value
	// read (OK reads).
	Value string `json:"value,omitempty"`
	// Old is the value a CAS compares with.
	Old string `json:"old,omitempty"`
	// ConditionFailed marks a CAS that failed because the key's value was
	// not Old (client.ErrConditionFailed): it wrote nothing, and it
	// observed a value other than Old. Its Outcome is Fail.
	ConditionFailed bool `json:"condition_failed,omitempty"`
	// Empty is true for an OK read that found no value (NotFound).
	Empty bool `json:"empty,omitempty"`
	// Call and Return are the invocation and completion times on the
	// run's Clock, in nanoseconds.
	Call   int64 `json:"call_ns"`
	Return int64 `json:"return_ns"`
	// Outcome is OK, Fail or Unknown.
	Outcome Outcome `json:"outcome"`
	// Node is the node a read was sent to directly, bypassing the client
	// library's routing; "" when it went through the client library.
	Node string `json:"node,omitempty"`
	// Final marks the reads made after the cluster was healed.
	Final bool `json:"final,omitempty"`
	// Error is the error of a Fail or Unknown operation.
	Error string `json:"error,omitempty"`
}

// Recorder collects operations. Each one is also written to w as a JSON
// line as soon as it completes, so a run that dies midway still leaves its
// history. It is safe for concurrent use.
type Recorder struct {
	mu struct {
		sync.Mutex
		ops []Op          // every operation added, in order of completion
		w   *bufio.Writer // nil when there is no output
		err error         // the first write error
	}
}

// NewRecorder returns a Recorder that writes to w (nil: nowhere).
func NewRecorder(w io.Writer) *Recorder {
	r := &Recorder{}
	if w != nil {
		r.mu.w = bufio.NewWriter(w)
	}
	return r
}

// Add records op, numbering it.
func (r *Recorder) Add(op Op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	op.Index = len(r.mu.ops)
	r.mu.ops = append(r.mu.ops, op)
	r.writeLocked(op)
}

func (r *Recorder) writeLocked(v any) {
	if r.mu.w == nil || r.mu.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		b = append(b, '\n')
		_, err = r.mu.w.Write(b)
	}
	r.mu.err = err
}

// Ops returns a copy of the operations recorded so far.
func (r *Recorder) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.mu.ops...)
}

// Flush writes out buffered lines and returns the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mu.w != nil && r.mu.err == nil {
		r.mu.err = r.mu.w.Flush()
	}
	return r.mu.err
}
