// Package loadgen is a closed-loop load generator for key-value stores: a
// number of clients, each with one request in flight, read and write keys
// of a fixed key space for a fixed time, and every call's latency goes into
// a log-linear histogram (see Histogram).
//
// It drives any store behind the small Store interface it declares, so the
// same generator, with the same key choice, values and clocks, measures
// ringkv (kvctl bench) and other stores (test/bench compares it with etcd).
//
// Closed loop means a client sends its next request only when its previous
// one has returned: a slower store gets fewer requests rather than a queue,
// and the latency measured is the store's service time as a client sees it.
// With a target rate (Config.Rate) the clients are paced to that total rate
// but stay closed-loop: when the store cannot keep up, the rate achieved is
// lower and no backlog builds up.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Store is what the generator calls. Its methods are called concurrently,
// by every client at once. They must not keep key or value after they
// return: the generator reuses both.
type Store interface {
	// Get reads key. A key that does not exist is an error: workloads that
	// read first write every key (see Prepopulate).
	Get(ctx context.Context, key []byte) error
	// Put sets key to value.
	Put(ctx context.Context, key, value []byte) error
}

// Op is a kind of operation the generator sends.
type Op int

// The operations. To add one (a compare-and-swap, say): add its constant
// before numOps with its name in opNames, declare the small interface a
// store implements to support it (such as `Swapper{ CompareAndSwap(ctx,
// key, old, new []byte) error }`), check for it in Config.validateFor, and
// call it in worker.do. A Mix then gives it a weight like any other.
const (
	// OpGet is a read of one key; for ringkv and etcd, a linearizable one.
	OpGet Op = iota
	// OpPut is a write of one key.
	OpPut

	numOps // the number of operations; keep it last
)

var opNames = [numOps]string{OpGet: "get", OpPut: "put"}

// String returns the operation's name: "get", "put".
func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("op(%d)", int(o))
	}
	return opNames[o]
}

// Mix gives each operation a weight: each request is op o with probability
// Mix[o]/sum(Mix). Mix{OpGet: 90, OpPut: 10} is 90% reads.
type Mix [numOps]int

// PutOnly returns the mix of writes only.
func PutOnly() Mix { return Mix{OpPut: 1} }

// GetOnly returns the mix of reads only.
func GetOnly() Mix { return Mix{OpGet: 1} }

// ReadMix returns a mix of readPct percent reads, the rest writes.
func ReadMix(readPct int) Mix { return Mix{OpGet: readPct, OpPut: 100 - readPct} }

// Defaults of Config's zero fields.
const (
	DefaultDuration  = 10 * time.Second
	DefaultKeys      = 10000
	DefaultValueSize = 256
	DefaultKeyPrefix = "bench/"
	DefaultOpTimeout = 10 * time.Second
)

// Config describes a run. Its zero value is valid: one client writing
// 256-byte values over 10,000 keys for 10 seconds, unpaced.
type Config struct {
	// Clients is the number of concurrent clients, each with one request
	// in flight. Default 1.
	Clients int
	// Duration is how long the measured part of the run lasts. Default
	// DefaultDuration.
	Duration time.Duration
	// Warmup is how long to send requests before measuring starts. Default
	// none.
	Warmup time.Duration
	// Keys is the size of the key space: keys KeyOf(prefix, 0..Keys-1),
	// each request picks one uniformly. Default DefaultKeys.
	Keys int
	// KeyPrefix starts every key. Default DefaultKeyPrefix.
	KeyPrefix string
	// ValueSize is the length of every value written. Default
	// DefaultValueSize.
	ValueSize int
	// Rate is the target total rate in requests per second, shared by all
	// clients; 0 sends as fast as the store answers.
	Rate float64
	// Mix weighs the operations. The zero Mix is PutOnly().
	Mix Mix
	// Seed seeds the clients' key and operation choices; the same seed
	// gives the same choices. Values are random bytes drawn from it too.
	Seed uint64
	// OpTimeout bounds each request. Default DefaultOpTimeout.
	OpTimeout time.Duration
	// Progress, when set, is called about once a second (from a goroutine
	// Run owns, never concurrently with itself) with the counts of the
	// last interval, warmup included. It must return quickly.
	Progress func(Progress)
}

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Keys == 0 {
		c.Keys = DefaultKeys
	}
	if c.KeyPrefix == "" {
		c.KeyPrefix = DefaultKeyPrefix
	}
	if c.ValueSize == 0 {
		c.ValueSize = DefaultValueSize
	}
	if c.Mix == (Mix{}) {
		c.Mix = PutOnly()
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
	return c
}

// Validate reports a field out of range. Zero fields take their defaults
// and are valid.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Clients < 1:
		return fmt.Errorf("loadgen: clients %d: must be >= 1", c.Clients)
	case c.Duration < 0:
		return fmt.Errorf("loadgen: duration %v: must be > 0", c.Duration)
	case c.Warmup < 0:
		return fmt.Errorf("loadgen: warmup %v: must be >= 0", c.Warmup)
	case c.Keys < 1:
		return fmt.Errorf("loadgen: keys %d: must be >= 1", c.Keys)
	case c.ValueSize < 0:
		return fmt.Errorf("loadgen: value size %d: must be >= 0", c.ValueSize)
	case c.Rate < 0:
		return fmt.Errorf("loadgen: rate %v: must be >= 0 (0 = unlimited)", c.Rate)
	case c.OpTimeout < 0:
		return fmt.Errorf("loadgen: op timeout %v: must be > 0", c.OpTimeout)
	}
	for o, w := range c.Mix {
		if w < 0 {
			return fmt.Errorf("loadgen: weight of %v is %d: must be >= 0", Op(o), w)
		}
	}
	return nil
}

// validateFor also checks that the stores support every operation the mix
// asks for. Get and Put are part of Store; operations that only some stores
// support (see the Op constants) are checked here.
func (c Config) validateFor(stores []Store) error {
	if len(stores) == 0 {
		return errors.New("loadgen: no store")
	}
	return c.Validate()
}

// KeyOf returns the i-th key of the key space under prefix: the prefix and
// i in 8 decimal digits, such as "bench/00000042".
func KeyOf(prefix string, i int) []byte {
	return fmt.Appendf(make([]byte, 0, len(prefix)+8), "%s%08d", prefix, i)
}

// Progress is what happened in one interval of a run.
type Progress struct {
	// Elapsed is the time since the run started, warmup included.
	Elapsed time.Duration
	// Warmup is true when the interval began during the warmup.
	Warmup bool
	// Interval is the length of the interval the counts are of.
	Interval time.Duration
	// Ops and Errors count the requests that ended in the interval, by
	// operation: successes and failures.
	Ops, Errors [numOps]uint64
}

// OpsPerSec returns the interval's successful requests per second, all
// operations together.
func (p Progress) OpsPerSec() float64 {
	var n uint64
	for _, c := range p.Ops {
		n += c
	}
	return float64(n) / p.Interval.Seconds()
}

// TotalErrors returns the interval's failed requests, all operations
// together.
func (p Progress) TotalErrors() uint64 {
	var n uint64
	for _, c := range p.Errors {
		n += c
	}
	return n
}

// Result is what a run measured: requests that started within the
// measured window, after the warmup.
type Result struct {
	// Clients is the number of clients; Stores the number of stores they
	// shared (client i used store i mod Stores).
	Clients int `json:"clients"`
	Stores  int `json:"stores"`
	// Duration is the measured window: Config.Duration, or less when the
	// run was cancelled.
	Duration time.Duration `json:"duration_ns"`
	// Rate is the target rate, 0 for none.
	Rate float64 `json:"target_rate,omitempty"`
	// OpsPerSec is the successful requests per second, all operations.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Errors counts the failed requests, all operations.
	Errors uint64 `json:"errors"`
	// Ops has a line per operation the mix sends, in Op order.
	Ops []OpResult `json:"ops"`
}

// OpResult is what a run measured of one operation.
type OpResult struct {
	Op string `json:"op"`
	// Count and Errors count successful and failed requests.
	Count  uint64 `json:"count"`
	Errors uint64 `json:"errors"`
	// OpsPerSec is Count over the measured window.
	OpsPerSec float64 `json:"ops_per_sec"`
	// Latency is the successful requests' latency.
	Latency Latency `json:"latency"`
	// ErrorSamples counts failures by message, for a few distinct
	// messages; failures with other messages are counted under "other".
	ErrorSamples map[string]uint64 `json:"error_samples,omitempty"`
	// Histogram holds every successful request's latency.
	Histogram *Histogram `json:"-"`
}

// Latency summarizes a latency histogram.
type Latency struct {
	Mean time.Duration `json:"mean_ns"`
	P50  time.Duration `json:"p50_ns"`
	P90  time.Duration `json:"p90_ns"`
	P99  time.Duration `json:"p99_ns"`
	P999 time.Duration `json:"p99_9_ns"`
	Max  time.Duration `json:"max_ns"`
}

// Summarize returns h's mean, usual quantiles and maximum.
func Summarize(h *Histogram) Latency {
	return Latency{
		Mean: h.Mean(),
		P50:  h.Quantile(0.50),
		P90:  h.Quantile(0.90),
		P99:  h.Quantile(0.99),
		P999: h.Quantile(0.999),
		Max:  h.Max(),
	}
}

// Op returns the result of operation op, and false if the run sent none.
func (r *Result) Op(op Op) (OpResult, bool) {
	for _, o := range r.Ops {
		if o.Op == op.String() {
			return o, true
		}
	}
	return OpResult{}, false
}

// maxErrorSamples bounds the distinct error messages a run keeps.
const maxErrorSamples = 5

// Run drives the stores with cfg's workload and returns what it measured.
// Client i uses stores[i%len(stores)], so several clients can share one
// connection. Run returns when the measured window has passed and every
// request in flight has returned; when ctx ends first, it returns what was
// measured so far with ctx's error.
func Run(ctx context.Context, cfg Config, stores []Store) (*Result, error) {
	if err := cfg.validateFor(stores); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()

	start := time.Now()
	r := &run{
		cfg:          cfg,
		measureStart: start.Add(cfg.Warmup),
		end:          start.Add(cfg.Warmup + cfg.Duration),
		samples:      make(map[string]uint64),
	}
	if cfg.Rate > 0 {
		r.pacer = newPacer(cfg.Rate, start)
	}
	var total float64
	for _, w := range cfg.Mix {
		total += float64(w)
	}
	workers := make([]*worker, cfg.Clients)
	var wg sync.WaitGroup
	for i := range workers {
		w := newWorker(r, i, stores[i%len(stores)], total)
		workers[i] = w
		wg.Go(func() { w.loop(ctx) })
	}

	progressDone := make(chan struct{})
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressWG.Go(func() { r.reportProgress(start, progressDone) })
	}
	wg.Wait()
	close(progressDone)
	progressWG.Wait()

	measured := cfg.Duration
	if ctx.Err() != nil { // cut short: rates are over the time measured
		measured = min(max(time.Since(r.measureStart), 0), cfg.Duration)
	}
	return r.result(workers, len(stores), measured), ctx.Err()
}

// run is the state the workers of one Run share.
type run struct {
	cfg          Config
	measureStart time.Time
	end          time.Time
	pacer        *pacer // nil when unpaced

	// live counts requests as they end, warmup included, for Progress.
	live struct {
		ops, errors [numOps]atomic.Uint64
	}

	mu      sync.Mutex
	samples map[string]uint64 // guarded by mu: failures by message, measured ones only
}

// reportProgress calls cfg.Progress once a second until done is closed.
func (r *run) reportProgress(start time.Time, done <-chan struct{}) {
	const every = time.Second
	t := time.NewTicker(every)
	defer t.Stop()
	var lastOps, lastErrs [numOps]uint64
	last := start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			p := Progress{Elapsed: now.Sub(start), Warmup: last.Before(r.measureStart), Interval: now.Sub(last)}
			for o := range numOps {
				ops, errs := r.live.ops[o].Load(), r.live.errors[o].Load()
				p.Ops[o], p.Errors[o] = ops-lastOps[o], errs-lastErrs[o]
				lastOps[o], lastErrs[o] = ops, errs
			}
			last = now
			r.cfg.Progress(p)
		}
	}
}

// noteError keeps a sample of a measured failure's message.
func (r *run) noteError(err error) {
	msg := err.Error()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.samples[msg]; !ok && len(r.samples) >= maxErrorSamples {
		msg = "other"
	}
	r.samples[msg]++
}

// result merges the workers' counts over a measured window of length d.
func (r *run) result(workers []*worker, stores int, d time.Duration) *Result {
	res := &Result{Clients: len(workers), Stores: stores, Duration: d, Rate: r.cfg.Rate}
	secs := max(d.Seconds(), 1e-9)
	for o := range numOps {
		if r.cfg.Mix[o] == 0 {
			continue
		}
		or := OpResult{Op: Op(o).String(), Histogram: &Histogram{}}
		for _, w := range workers {
			or.Histogram.Merge(&w.hist[o])
			or.Errors += w.errors[o]
		}
		or.Count = or.Histogram.Count()
		or.OpsPerSec = float64(or.Count) / secs
		or.Latency = Summarize(or.Histogram)
		res.OpsPerSec += or.OpsPerSec
		res.Errors += or.Errors
		res.Ops = append(res.Ops, or)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) > 0 {
		// Samples are not kept per operation: file them under the first
		// operation that failed, which is the only one in most runs.
		for i := range res.Ops {
			if res.Ops[i].Errors > 0 {
				res.Ops[i].ErrorSamples = r.samples
				break
			}
		}
	}
	return res
}

// worker is one closed-loop client.
type worker struct {
	r     *run
	store Store
	rng   *rand.Rand
	// cum[o] is the cumulative weight of operations 0..o, over the total.
	cum   [numOps]float64
	value []byte

	// Owned by the worker until Run's wait group says it is done.
	hist   [numOps]Histogram
	errors [numOps]uint64
}

func newWorker(r *run, i int, store Store, totalWeight float64) *worker {
	w := &worker{
		r:     r,
		store: store,
		rng:   rand.New(rand.NewPCG(r.cfg.Seed, uint64(i))),
		value: make([]byte, r.cfg.ValueSize),
	}
	var acc float64
	for o, wt := range r.cfg.Mix {
		acc += float64(wt)
		w.cum[o] = acc / totalWeight
	}
	for j := range w.value {
		w.value[j] = byte(w.rng.Uint32())
	}
	return w
}

// pick returns the next operation, by the mix's weights.
func (w *worker) pick() Op {
	x := w.rng.Float64()
	for o, c := range w.cum {
		if x < c && w.r.cfg.Mix[o] > 0 {
			return Op(o)
		}
	}
	for o := numOps - 1; o >= 0; o-- { // x rounded past the last bound
		if w.r.cfg.Mix[o] > 0 {
			return o
		}
	}
	return OpPut // not reached: a valid mix has a positive weight
}

// loop sends requests, one at a time, until the run's end or ctx's.
func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		if w.r.pacer != nil {
			if !w.r.pacer.wait(ctx, w.r.end) {
				return
			}
		}
		start := time.Now()
		if !start.Before(w.r.end) {
			return
		}
		op := w.pick()
		key := KeyOf(w.r.cfg.KeyPrefix, w.rng.IntN(w.r.cfg.Keys))
		err := w.do(ctx, op, key)
		lat := time.Since(start)
		if err != nil && ctx.Err() != nil {
			return // the run was cancelled: not the store's failure
		}
		if err != nil {
			w.r.live.errors[op].Add(1)
		} else {
			w.r.live.ops[op].Add(1)
		}
		if start.Before(w.r.measureStart) {
			continue
		}
		if err != nil {
			w.errors[op]++
			w.r.noteError(err)
			continue
		}
		w.hist[op].Record(lat)
	}
}

// do sends one request.
func (w *worker) do(ctx context.Context, op Op, key []byte) error {
	ctx, cancel := context.WithTimeout(ctx, w.r.cfg.OpTimeout)
	defer cancel()
	switch op {
	case OpGet:
		return w.store.Get(ctx, key)
	case OpPut:
		return w.store.Put(ctx, key, w.value)
	}
	return fmt.Errorf("loadgen: no such operation %v", op)
}
