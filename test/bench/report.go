package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// machine describes where the comparison ran.
type machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Disk     string `json:"disk,omitempty"`
	Go       string `json:"go"`
}

func thisMachine(disk string) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Disk: disk}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// report is results.json: everything a comparison measured.
type report struct {
	Start    time.Time         `json:"start"`
	End      time.Time         `json:"end"`
	Machine  machine           `json:"machine"`
	Versions map[string]string `json:"versions"`
	Settings settings          `json:"settings"`
	Summary  []line            `json:"summary"`
	Runs     []measurement     `json:"runs"`
}

func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// writeTable writes the side-by-side table: medians over the rounds,
// throughput ratio of the first system to the second, latencies in ms.
func writeTable(out io.Writer, lines []line, names []string) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	a, b := strings.ToUpper(names[0]), strings.ToUpper(names[1])
	fmt.Fprintf(w, "WORKLOAD\tCLIENTS\tCONNS\t%s OPS/S\t%s OPS/S\t%s/%s\tPAIRED\t%s P50\t%s P50\t%s P99\t%s P99\tERRORS\t\n",
		a, b, a, b, a, b, a, b)
	for _, l := range lines {
		x, y := l.Systems[0], l.Systems[1]
		fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.2fx\t%.2fx\t%s\t%s\t%s\t%s\t%d/%d\t\n",
			l.Name, l.Clients, l.Conns, x.OpsPerSec, y.OpsPerSec, l.Ratio, l.PairedRatio,
			fmtMs(x.P50), fmtMs(y.P50), fmtMs(x.P99), fmtMs(y.P99), x.Errors, y.Errors)
	}
	return w.Flush()
}

// writeMarkdown writes the table for docs/performance.md, with each
// system's range over the rounds.
func writeMarkdown(out io.Writer, rep report, names []string) {
	a, b := names[0], names[1]
	fmt.Fprintf(out, "Medians of %d alternating rounds of %v each (after %v warmup), the rounds' range in brackets; "+
		"%s/%s is the ratio of the medians, paired the median of the rounds' own ratios; "+
		"%d-byte values over %d keys; latency in ms.\n\n",
		rep.Settings.Rounds, rep.Settings.Duration, rep.Settings.Warmup, a, b, rep.Settings.ValueSize, rep.Settings.Keys)
	fmt.Fprintf(out, "| workload | clients | conns | %s ops/s | %s ops/s | %s/%s | paired | %s p50 | %s p50 | %s p99 | %s p99 | errors %s/%s |\n", a, b, a, b, a, b, a, b, a, b)
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, l := range rep.Summary {
		x, y := l.Systems[0], l.Systems[1]
		fmt.Fprintf(out, "| %s | %d | %d | %s | %s | **%.2fx** | %.2fx | %s | %s | %s | %s | %d/%d |\n",
			l.Name, l.Clients, l.Conns, withRange(x), withRange(y), l.Ratio, l.PairedRatio,
			fmtMs(x.P50), fmtMs(y.P50), fmtMs(x.P99), fmtMs(y.P99), x.Errors, y.Errors)
	}
	fmt.Fprintln(out)
	if lo, hi, ok := loadRange(rep.Runs); ok {
		fmt.Fprintf(out, "1-minute load average before the runs: %.1f to %.1f (the machine is shared: above %d, others were busy too).\n",
			lo, hi, rep.Machine.CPUs)
	}
	fmt.Fprintf(out, "Machine: %d CPUs (%s), Linux %s, disk %s; %s. Versions: %s.\n",
		rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.Kernel, dashIfEmpty(rep.Machine.Disk), rep.Machine.Go, versions(rep.Versions))
}

// withRange formats a median with the range of the rounds: "3412 (3100-3600)".
func withRange(s systemSummary) string {
	if len(s.Rounds) < 2 {
		return fmt.Sprintf("%.0f", s.OpsPerSec)
	}
	return fmt.Sprintf("%.0f (%.0f-%.0f)", s.OpsPerSec, slices.Min(s.Rounds), slices.Max(s.Rounds))
}

func versions(v map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(v)) {
		parts = append(parts, k+" "+v[k])
	}
	return strings.Join(parts, ", ")
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// loadRange returns the lowest and highest 1-minute load average seen
// before the runs.
func loadRange(runs []measurement) (lo, hi float64, ok bool) {
	for _, r := range runs {
		v, err := strconv.ParseFloat(firstField(r.LoadAvg), 64)
		if err != nil {
			continue
		}
		if !ok {
			lo, hi, ok = v, v, true
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi, ok
}
