package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/loadgen"
)

// The workloads of kvctl bench.
const (
	workloadPut   = "put"
	workloadGet   = "get"
	workloadMixed = "mixed"
)

// benchFlags are kvctl bench's own flags.
type benchFlags struct {
	clients     int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	keys        int
	valueSize   int
	rate        float64
	readPct     int
	prepopulate bool
	seed        uint64
}

func newBenchCommand(a *app) *cobra.Command {
	f := benchFlags{}
	cmd := &cobra.Command{
		Use:   "bench put|get|mixed",
		Short: "Measure the cluster's throughput and latency under load",
		Long: "Run a closed-loop load against the cluster: --clients clients, each with one\n" +
			"request in flight, sharing --conns client connections, write (put), read\n" +
			"linearizably (get) or both (mixed, --read-pct reads) random keys of\n" +
			"--keys keys for --duration after --warmup. Before a get or mixed run, every\n" +
			"key is written once (prepopulated) so that reads find it.\n\n" +
			"A progress line goes to stderr once a second; at the end, a table of ops/s,\n" +
			"latency percentiles (p50, p90, p99, p99.9, max) and errors per operation\n" +
			"goes to stdout (-o json: one JSON object). --timeout bounds connecting\n" +
			"and each request, not the whole run.",
		Example: "  kvctl bench put --clients 64 --duration 10s\n" +
			"  kvctl bench get --clients 64 --conns 4\n" +
			"  kvctl bench mixed --read-pct 90 --clients 64 --rate 5000",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{workloadPut, workloadGet, workloadMixed},
		RunE: func(cmd *cobra.Command, args []string) error {
			readPctSet := cmd.Flags().Changed("read-pct")
			mix, err := f.mix(args[0], readPctSet)
			if err != nil {
				return err
			}
			if err := f.validate(); err != nil {
				return err
			}
			return a.bench(cmd, args[0], mix, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.clients, "clients", 1, "concurrent clients, each with one request in flight")
	fl.IntVar(&f.conns, "conns", 1, "client connections (client.Client instances) the clients share, round-robin")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long to measure")
	fl.DurationVar(&f.warmup, "warmup", time.Second, "how long to send load before measuring")
	fl.IntVar(&f.keys, "keys", loadgen.DefaultKeys, "number of distinct keys, chosen uniformly")
	fl.IntVar(&f.valueSize, "value-size", loadgen.DefaultValueSize, "bytes per value written")
	fl.Float64Var(&f.rate, "rate", 0, "target total requests per second (0 = as fast as the cluster answers)")
	fl.IntVar(&f.readPct, "read-pct", 90, "mixed only: percentage of reads")
	fl.BoolVar(&f.prepopulate, "prepopulate", true, "get and mixed only: write every key once before the run")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the key, operation and value choices")
	return cmd
}

// mix returns the operation mix of a workload.
func (f benchFlags) mix(workload string, readPctSet bool) (loadgen.Mix, error) {
	if readPctSet && workload != workloadMixed {
		return loadgen.Mix{}, fmt.Errorf("--read-pct is for the %s workload only", workloadMixed)
	}
	switch workload {
	case workloadPut:
		return loadgen.PutOnly(), nil
	case workloadGet:
		return loadgen.GetOnly(), nil
	case workloadMixed:
		if f.readPct < 0 || f.readPct > 100 {
			return loadgen.Mix{}, fmt.Errorf("--read-pct %d: must be 0..100", f.readPct)
		}
		return loadgen.ReadMix(f.readPct), nil
	}
	return loadgen.Mix{}, fmt.Errorf("unknown workload %q: want %s, %s or %s", workload, workloadPut, workloadGet, workloadMixed)
}

func (f benchFlags) validate() error {
	switch {
	case f.clients < 1:
		return fmt.Errorf("--clients %d: must be >= 1", f.clients)
	case f.conns < 1 || f.conns > f.clients:
		return fmt.Errorf("--conns %d: must be 1..--clients (%d)", f.conns, f.clients)
	case f.duration <= 0:
		return fmt.Errorf("--duration %v: must be > 0", f.duration)
	case f.warmup < 0:
		return fmt.Errorf("--warmup %v: must be >= 0", f.warmup)
	case f.keys < 1:
		return fmt.Errorf("--keys %d: must be >= 1", f.keys)
	case f.valueSize < 0:
		return fmt.Errorf("--value-size %d: must be >= 0", f.valueSize)
	case f.rate < 0:
		return fmt.Errorf("--rate %v: must be >= 0", f.rate)
	}
	return nil
}

// bench runs the benchmark and prints its report.
func (a *app) bench(cmd *cobra.Command, workload string, mix loadgen.Mix, f benchFlags) error {
	ctx := cmd.Context()
	stderr := cmd.ErrOrStderr()
	stores, clients, closeAll, err := a.openStores(ctx, f.conns)
	if err != nil {
		return explain(err)
	}
	defer closeAll()

	cfg := loadgen.Config{
		Clients:   f.clients,
		Duration:  f.duration,
		Warmup:    f.warmup,
		Keys:      f.keys,
		ValueSize: f.valueSize,
		Rate:      f.rate,
		Mix:       mix,
		Seed:      f.seed,
		OpTimeout: a.timeout,
		Progress:  newProgressPrinter(stderr),
	}
	if f.prepopulate && mix[loadgen.OpGet] > 0 {
		fmt.Fprintf(stderr, "prepopulating %d keys of %d bytes, so that reads find them...\n", f.keys, f.valueSize)
		start := time.Now()
		if err := loadgen.Prepopulate(ctx, cfg, stores, min(f.clients, 64)); err != nil {
			return explain(err)
		}
		fmt.Fprintf(stderr, "prepopulated in %v\n", time.Since(start).Round(time.Millisecond))
	}
	res, runErr := loadgen.Run(ctx, cfg, stores)
	if res == nil {
		return runErr
	}
	endProgress(stderr)
	if runErr != nil {
		fmt.Fprintln(stderr, "interrupted: the results cover the run so far")
	}
	report := newBenchReport(workload, f, res)
	for _, c := range clients {
		s := c.Stats()
		report.Client.Calls += s.Calls
		report.Client.Retries += s.Retries
		report.Client.OverloadRetries += s.OverloadRetries
		report.Client.Failed += s.Failed
		report.Client.MapRefreshes += s.MapRefreshes
	}
	if a.output == outputJSON {
		err = writeJSON(cmd.OutOrStdout(), report)
	} else {
		err = writeBenchTable(cmd.OutOrStdout(), report)
	}
	return errors.Join(runErr, err)
}

// openStores connects n clients to the cluster, each within the timeout.
// closeAll closes them.
func (a *app) openStores(ctx context.Context, n int) (stores []loadgen.Store, clients []*client.Client, closeAll func(), err error) {
	closeAll = func() {
		for _, c := range clients {
			_ = c.Close()
		}
	}
	for range n {
		cctx, cancel := context.WithTimeout(ctx, a.timeout)
		c, err := a.newClient(cctx)
		cancel()
		if err != nil {
			closeAll()
			return nil, nil, nil, err
		}
		clients = append(clients, c)
		stores = append(stores, clientStore{c})
	}
	return stores, clients, closeAll, nil
}

// clientStore is the load generator's view of a client.Client.
type clientStore struct{ c *client.Client }

func (s clientStore) Get(ctx context.Context, key []byte) error {
	_, err := s.c.Get(ctx, key)
	return err
}

func (s clientStore) Put(ctx context.Context, key, value []byte) error {
	_, err := s.c.Put(ctx, key, value)
	return err
}

// newProgressPrinter returns a loadgen progress callback that prints one
// line a second to w: in place when w is a terminal, else line by line.
func newProgressPrinter(w io.Writer) func(loadgen.Progress) {
	inPlace := isTerminal(w)
	return func(p loadgen.Progress) {
		phase := ""
		if p.Warmup {
			phase = " (warmup)"
		}
		line := fmt.Sprintf("%5.0fs%s  %9.1f ops/s  %d errors", p.Elapsed.Seconds(), phase, p.OpsPerSec(), p.TotalErrors())
		if inPlace {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	}
}

// endProgress ends the progress line of a terminal.
func endProgress(w io.Writer) {
	if isTerminal(w) {
		fmt.Fprintln(w)
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
