package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ringkv/ringkv/loadgen"
)

// settings are the knobs every run of a comparison shares.
type settings struct {
	Rounds    int           `json:"rounds"`
	Duration  time.Duration `json:"duration_ns"`
	Warmup    time.Duration `json:"warmup_ns"`
	Pause     time.Duration `json:"pause_ns"`
	Keys      int           `json:"keys"`
	ValueSize int           `json:"value_size"`
}

// measurement is one measured run: one system, one workload, one round.
type measurement struct {
	System   string `json:"system"`
	Workload string `json:"workload"`
	Clients  int    `json:"clients"`
	Conns    int    `json:"conns"`
	Round    int    `json:"round"`
	// Position is the run's place within its round: 0 first, 1 second.
	Position int       `json:"position"`
	Start    time.Time `json:"start"`
	// LoadAvg is /proc/loadavg just before the run: how busy the shared
	// machine was.
	LoadAvg string `json:"loadavg"`
	// All summarizes the latency of every operation of the run.
	All    loadgen.Latency `json:"latency_all"`
	Result *loadgen.Result `json:"result"`
}

// compare runs every workload against every system, rounds times,
// alternating which system goes first in each round, and returns the runs.
func compare(ctx context.Context, systems []*system, plan []workload, s settings, logf func(string, ...any)) ([]measurement, error) {
	var runs []measurement
	total := len(plan) * s.Rounds * len(systems)
	done := 0
	for _, w := range plan {
		for round := range s.Rounds {
			order := slices.Clone(systems)
			if round%2 == 1 {
				slices.Reverse(order)
			}
			for pos, sys := range order {
				cfg := loadgen.Config{
					Clients:   w.Clients,
					Duration:  s.Duration,
					Warmup:    s.Warmup,
					Keys:      s.Keys,
					ValueSize: s.ValueSize,
					Mix:       w.Mix,
					Seed:      uint64(round + 1),
				}
				r := measurement{System: sys.name, Workload: w.Name, Clients: w.Clients, Conns: w.Conns,
					Round: round + 1, Position: pos, Start: time.Now(), LoadAvg: loadAvg()}
				res, err := loadgen.Run(ctx, cfg, sys.stores[:w.Conns])
				if err != nil {
					return runs, err
				}
				r.Result = res
				r.All = mergedLatency(res)
				runs = append(runs, r)
				done++
				logf("[%d/%d] %-8s %3d clients  round %d  %-6s  %8.0f ops/s  p50 %6s  p99 %7s  errors %d  (load %s)",
					done, total, w.Name, w.Clients, round+1, sys.name, res.OpsPerSec, fmtMs(r.All.P50), fmtMs(r.All.P99),
					res.Errors, firstField(r.LoadAvg))
				for _, o := range res.Ops {
					for msg, n := range o.ErrorSamples {
						logf("      %d × %s", n, msg)
					}
				}
				if err := sleep(ctx, s.Pause); err != nil {
					return runs, err
				}
			}
		}
	}
	return runs, nil
}

// mergedLatency summarizes the latency of all of a run's operations.
func mergedLatency(res *loadgen.Result) loadgen.Latency {
	var h loadgen.Histogram
	for _, o := range res.Ops {
		h.Merge(o.Histogram)
	}
	return loadgen.Summarize(&h)
}

// systemSummary is one system's medians over the rounds of a workload.
type systemSummary struct {
	System    string        `json:"system"`
	OpsPerSec float64       `json:"ops_per_sec_median"`
	Rounds    []float64     `json:"ops_per_sec_rounds"`
	P50       time.Duration `json:"p50_median_ns"`
	P99       time.Duration `json:"p99_median_ns"`
	P999      time.Duration `json:"p99_9_median_ns"`
	Errors    uint64        `json:"errors"`
}

// line is one workload of the comparison, every system's medians, and
// the throughput ratio of the first system to the second: of their medians,
// and the median of the ratios within each round, where the two ran a few
// seconds apart and so under much the same load from the rest of the
// machine.
type line struct {
	workload
	Systems     []systemSummary `json:"systems"`
	Ratio       float64         `json:"ratio"`
	RoundRatios []float64       `json:"round_ratios"`
	PairedRatio float64         `json:"paired_ratio"`
}

// summarize reduces the runs to one line per workload that ran, in plan
// order, systems in the order given.
func summarize(runs []measurement, plan []workload, systems []string) []line {
	var out []line
	for _, w := range plan {
		l := line{workload: w}
		for _, name := range systems {
			ss := systemSummary{System: name}
			var p50, p99, p999 []time.Duration
			for _, r := range runs {
				if r.System != name || r.Workload != w.Name || r.Clients != w.Clients {
					continue
				}
				ss.Rounds = append(ss.Rounds, r.Result.OpsPerSec)
				p50, p99, p999 = append(p50, r.All.P50), append(p99, r.All.P99), append(p999, r.All.P999)
				ss.Errors += r.Result.Errors
			}
			ss.OpsPerSec = median(ss.Rounds)
			ss.P50, ss.P99, ss.P999 = median(p50), median(p99), median(p999)
			l.Systems = append(l.Systems, ss)
		}
		ran := false
		for _, ss := range l.Systems {
			ran = ran || len(ss.Rounds) > 0
		}
		if !ran { // an interrupted comparison never got here
			continue
		}
		if len(systems) == 2 {
			if l.Systems[1].OpsPerSec > 0 {
				l.Ratio = l.Systems[0].OpsPerSec / l.Systems[1].OpsPerSec
			}
			l.RoundRatios = roundRatios(runs, w, systems[0], systems[1])
			l.PairedRatio = median(l.RoundRatios)
		}
		out = append(out, l)
	}
	return out
}

// roundRatios returns, for each round of w in which both systems ran, a's
// throughput over b's.
func roundRatios(runs []measurement, w workload, a, b string) []float64 {
	type pair struct{ a, b float64 }
	byRound := map[int]*pair{}
	var rounds []int
	for _, r := range runs {
		if r.Workload != w.Name || r.Clients != w.Clients {
			continue
		}
		p := byRound[r.Round]
		if p == nil {
			p = &pair{}
			byRound[r.Round] = p
			rounds = append(rounds, r.Round)
		}
		switch r.System {
		case a:
			p.a = r.Result.OpsPerSec
		case b:
			p.b = r.Result.OpsPerSec
		}
	}
	slices.Sort(rounds)
	var out []float64
	for _, rd := range rounds {
		if p := byRound[rd]; p.a > 0 && p.b > 0 {
			out = append(out, p.a/p.b)
		}
	}
	return out
}

// median returns the middle value, or the mean of the two middle ones;
// 0 for none.
func median[T float64 | time.Duration](xs []T) T {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// loadAvg returns /proc/loadavg, or "" where there is none.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "?"
}

// fmtMs formats d in milliseconds, three significant digits or more.
func fmtMs(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v < 10:
		return fmt.Sprintf("%.2f", v)
	case v < 100:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
