package main

import (
	"encoding/xml"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/loadgen"
)

func TestParsePlan(t *testing.T) {
	plan, err := parsePlan(defaultPlan, 32)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range plan {
		got = append(got, w.Name+"@"+strconv.Itoa(w.Clients)+"/"+strconv.Itoa(w.Conns))
	}
	want := "put@1/1 put@16/1 put@64/2 put@256/8 get@1/1 get@64/2 get@256/8 mixed90@64/2"
	if strings.Join(got, " ") != want {
		t.Errorf("default plan = %s; want %s", strings.Join(got, " "), want)
	}
	if plan[7].Mix != loadgen.ReadMix(90) {
		t.Errorf("mixed90 mix = %v; want 90%% reads", plan[7].Mix)
	}
	for _, bad := range []string{"", "put", "put:", "put:0", "scan:4", "mixed101:4", "get:1,x"} {
		if _, err := parsePlan(bad, 32); err == nil {
			t.Errorf("parsePlan(%q): no error", bad)
		}
	}
}

func TestMedian(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median(3,1,2) = %v; want 2", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median(4,1,3,2) = %v; want 2.5", got)
	}
	if got := median([]time.Duration(nil)); got != 0 {
		t.Errorf("median() = %v; want 0", got)
	}
}

// fakeRuns makes the runs of a plan: system a at 2x system b's throughput.
func fakeRuns(plan []workload, rounds int) []measurement {
	var runs []measurement
	for _, w := range plan {
		for r := range rounds {
			for i, sys := range []string{"a", "b"} {
				ops := float64(100*w.Clients*(2-i)) + float64(r)
				lat := time.Duration(w.Clients*(i+1)) * time.Millisecond
				runs = append(runs, measurement{System: sys, Workload: w.Name, Clients: w.Clients, Round: r + 1,
					Result: &loadgen.Result{OpsPerSec: ops},
					All:    loadgen.Latency{P50: lat, P99: 3 * lat}})
			}
		}
	}
	return runs
}

func TestSummarizeTableAndChart(t *testing.T) {
	plan, _ := parsePlan("put:1,64 get:1", 32)
	lines := summarize(fakeRuns(plan, 3), plan, []string{"a", "b"})
	if len(lines) != 3 {
		t.Fatalf("%d lines; want 3", len(lines))
	}
	if got := summarize(fakeRuns(plan[:1], 3), plan, []string{"a", "b"}); len(got) != 1 {
		t.Errorf("%d lines after only the first workload ran; want 1", len(got))
	}
	put64 := lines[1]
	if put64.Systems[0].OpsPerSec != 12801 || put64.Systems[1].OpsPerSec != 6401 {
		t.Errorf("put@64 medians %v, %v; want 12801, 6401 (round 2 of 3)", put64.Systems[0].OpsPerSec, put64.Systems[1].OpsPerSec)
	}
	if r := put64.Ratio; r < 1.99 || r > 2.01 {
		t.Errorf("put@64 ratio %v; want 2", r)
	}
	// Rounds: 12800/6400, 12801/6401, 12802/6402; the middle one is the median.
	if got := put64.RoundRatios; len(got) != 3 || put64.PairedRatio != 12801.0/6401 {
		t.Errorf("put@64 round ratios %v, paired %v; want 3 rounds, median 12801/6401", got, put64.PairedRatio)
	}
	var tbl strings.Builder
	if err := writeTable(&tbl, lines, []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tbl.String(), "A/B") || !strings.Contains(tbl.String(), "2.00x") {
		t.Errorf("table lacks the ratio:\n%s", tbl.String())
	}
	var md strings.Builder
	writeMarkdown(&md, report{Summary: lines, Settings: settings{Rounds: 3}}, []string{"a", "b"})
	if !strings.Contains(md.String(), "| put | 64 | 2 | 12801 (12800-12802) | 6401 (6400-6402) | **2.00x** | 2.00x |") {
		t.Errorf("markdown lacks the put@64 line:\n%s", md.String())
	}
	var svg strings.Builder
	if err := writeChart(&svg, lines, []string{"a", "b"}, "a vs b <test>"); err != nil {
		t.Fatal(err)
	}
	// The chart must be well-formed XML, with a line per series of more
	// than one point.
	dec := xml.NewDecoder(strings.NewReader(svg.String()))
	for {
		_, err := dec.Token()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("chart is not well-formed: %v\n%s", err, svg.String())
			}
			break
		}
	}
	if n := strings.Count(svg.String(), "<polyline"); n != 4 {
		t.Errorf("%d polylines; want 4 (put of a and b, in two panels)", n)
	}
}
