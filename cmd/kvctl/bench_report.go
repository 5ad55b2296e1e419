package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/loadgen"
)

// benchReport is kvctl bench's output: the run's settings and results.
type benchReport struct {
	Workload    string          `json:"workload"`
	ReadPct     *int            `json:"read_pct,omitempty"`
	Clients     int             `json:"clients"`
	Conns       int             `json:"conns"`
	Duration    time.Duration   `json:"duration_ns"`
	Warmup      time.Duration   `json:"warmup_ns"`
	Keys        int             `json:"keys"`
	ValueSize   int             `json:"value_size"`
	Rate        float64         `json:"target_rate,omitempty"`
	Prepopulate bool            `json:"prepopulated"`
	Result      *loadgen.Result `json:"result"`
	// Client sums the client library's counters over the connections,
	// prepopulation included.
	Client client.Stats `json:"client"`
}

func newBenchReport(workload string, f benchFlags, res *loadgen.Result) benchReport {
	r := benchReport{
		Workload:  workload,
		Clients:   f.clients,
		Conns:     f.conns,
		Duration:  f.duration,
		Warmup:    f.warmup,
		Keys:      f.keys,
		ValueSize: f.valueSize,
		Rate:      f.rate,
		Result:    res,
	}
	if workload == workloadMixed {
		pct := f.readPct
		r.ReadPct = &pct
	}
	r.Prepopulate = f.prepopulate && workload != workloadPut
	return r
}

// writeBenchTable writes the report as a headline and a table, one line per
// operation and a total line when there are several; latencies in ms.
func writeBenchTable(out io.Writer, r benchReport) error {
	name := r.Workload
	if r.ReadPct != nil {
		name = fmt.Sprintf("%s (%d%% reads)", name, *r.ReadPct)
	}
	rate := ""
	if r.Rate > 0 {
		rate = fmt.Sprintf(", paced to %g ops/s", r.Rate)
	}
	fmt.Fprintf(out, "%s: %s on %s, %v measured after %v warmup, %d-byte values over %d keys%s\n\n",
		name, plural(r.Clients, "client"), plural(r.Conns, "connection"), r.Duration, r.Warmup, r.ValueSize, r.Keys, rate)

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "OP\tOPS/S\tCOUNT\tERRORS\tP50 ms\tP90 ms\tP99 ms\tP99.9 ms\tMAX ms\t")
	for _, o := range r.Result.Ops {
		l := o.Latency
		fmt.Fprintf(w, "%s\t%.1f\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", o.Op, o.OpsPerSec, o.Count, o.Errors,
			ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), ms(l.Max))
	}
	if len(r.Result.Ops) > 1 {
		var count uint64
		for _, o := range r.Result.Ops {
			count += o.Count
		}
		fmt.Fprintf(w, "total\t%.1f\t%d\t%d\t\t\t\t\t\t\n", r.Result.OpsPerSec, count, r.Result.Errors)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if s := r.Client; s.Retries > 0 || s.MapRefreshes > 0 {
		fmt.Fprintf(out, "\nclient: %d retries (%d after refusals for load), %d shard map refreshes, over %d calls\n",
			s.Retries, s.OverloadRetries, s.MapRefreshes, s.Calls)
	}
	for _, o := range r.Result.Ops {
		for _, msg := range slices.Sorted(maps.Keys(o.ErrorSamples)) {
			fmt.Fprintf(out, "\n%d × %s", o.ErrorSamples[msg], msg)
		}
		if len(o.ErrorSamples) > 0 {
			fmt.Fprintln(out)
		}
	}
	return nil
}

// ms formats d in milliseconds with three significant digits or more.
func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// plural returns "1 thing" or "n things".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}
