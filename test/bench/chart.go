package main

import (
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strings"
	"time"
)

// Chart geometry: two panels side by side, throughput and p99 latency
// against clients (log scale).
const (
	chartW     = 1000
	chartH     = 440
	panelW     = 400
	panelH     = 300
	panelTop   = 80
	panelLeft1 = 80
	panelLeft2 = 560
)

var workloadColors = []string{"#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e"}

// series is one system's points of one workload: clients → value.
type series struct {
	system, workload string
	first            bool // the first system: solid lines, filled marks
	color            string
	clients          []int
	ops              []float64
	p99              []time.Duration
}

// writeChart draws the summary as an SVG: ops/s and p99 against clients,
// one colour per workload, solid for the first system, dashed for the
// second.
func writeChart(out io.Writer, lines []line, names []string, title string) error {
	var all []*series
	var workloads []string
	for _, l := range lines {
		if !slices.Contains(workloads, l.Name) {
			workloads = append(workloads, l.Name)
		}
	}
	for wi, wl := range workloads {
		for si, name := range names {
			s := &series{system: name, workload: wl, first: si == 0, color: workloadColors[wi%len(workloadColors)]}
			for _, l := range lines {
				if l.Name != wl {
					continue
				}
				for _, ss := range l.Systems {
					if ss.System == name {
						s.clients = append(s.clients, l.Clients)
						s.ops = append(s.ops, ss.OpsPerSec)
						s.p99 = append(s.p99, ss.P99)
					}
				}
			}
			all = append(all, s)
		}
	}

	maxClients, maxOps := 1, 1.0
	minP99, maxP99 := math.Inf(1), 0.0
	var ticks []int
	for _, s := range all {
		for i, c := range s.clients {
			maxClients = max(maxClients, c)
			if !slices.Contains(ticks, c) {
				ticks = append(ticks, c)
			}
			maxOps = max(maxOps, s.ops[i])
			if ms := float64(s.p99[i]) / 1e6; ms > 0 {
				minP99, maxP99 = min(minP99, ms), max(maxP99, ms)
			}
		}
	}
	slices.Sort(ticks)
	if maxP99 == 0 {
		minP99, maxP99 = 1, 10
	}
	xMax := math.Max(1, math.Log2(float64(maxClients)))
	x := func(left float64, c int) float64 { return left + math.Log2(float64(c))/xMax*panelW }
	opsTop := niceCeil(maxOps * 1.05)
	yOps := func(v float64) float64 { return panelTop + panelH - v/opsTop*panelH }
	lo, hi := math.Floor(math.Log10(minP99)), math.Ceil(math.Log10(maxP99))
	if hi <= lo {
		hi = lo + 1
	}
	yLat := func(ms float64) float64 {
		return panelTop + panelH - (math.Log10(math.Max(ms, 1e-3))-lo)/(hi-lo)*panelH
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", chartW, chartH, chartW, chartH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", panelLeft1-60, html.EscapeString(title))

	// Legend: one entry per series.
	lx, ly := float64(panelLeft1-60), 44.0
	for _, s := range all {
		if len(s.clients) == 0 {
			continue
		}
		label := s.system + " " + s.workload
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="%s" stroke-width="2"%s/>`, lx, ly, lx+22, ly, s.color, dash(s))
		mark(&b, s, lx+11, ly)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s</text>`+"\n", lx+28, ly+4, html.EscapeString(label))
		lx += 28 + float64(len(label))*7 + 18
		if lx > chartW-140 {
			lx, ly = float64(panelLeft1-60), ly+18
		}
	}

	panels := []struct {
		left  float64
		title string
	}{{panelLeft1, "throughput (ops/s, higher is better)"}, {panelLeft2, "p99 latency (ms, log scale, lower is better)"}}
	for pi, p := range panels {
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-weight="bold">%s</text>`+"\n", p.left, panelTop-8, p.title)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>`+"\n", p.left, panelTop, panelW, panelH)
		for _, c := range ticks {
			xx := x(p.left, c)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>`, xx, panelTop, xx, panelTop+panelH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%d</text>`+"\n", xx, panelTop+panelH+16, c)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" text-anchor="middle">clients (one request in flight each)</text>`+"\n", p.left+panelW/2, panelTop+panelH+34)
		if pi == 0 {
			for i := 0; i <= 5; i++ {
				v := opsTop * float64(i) / 5
				yy := yOps(v)
				fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, p.left, yy, p.left+panelW, yy)
				fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", p.left-6, yy+4, thousands(v))
			}
		} else {
			for e := lo; e <= hi; e++ {
				for _, m := range []float64{1, 2, 5} {
					v := m * math.Pow(10, e)
					if e == hi && m > 1 {
						break
					}
					yy := yLat(v)
					fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/>`, p.left, yy, p.left+panelW, yy)
					fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%g</text>`+"\n", p.left-6, yy+4, v)
				}
			}
		}
		for _, s := range all {
			var pts []string
			var xs, ys []float64
			for i, c := range s.clients {
				yy := yOps(s.ops[i])
				if pi == 1 {
					yy = yLat(float64(s.p99[i]) / 1e6)
				}
				xs, ys = append(xs, x(p.left, c)), append(ys, yy)
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xs[i], yy))
			}
			if len(pts) > 1 {
				fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.color, dash(s))
			}
			for i := range xs {
				mark(&b, s, xs[i], ys[i])
			}
		}
	}
	fmt.Fprintln(&b, "</svg>")
	_, err := io.WriteString(out, b.String())
	return err
}

func dash(s *series) string {
	if s.first {
		return ""
	}
	return ` stroke-dasharray="6,4"`
}

// mark draws a point: filled for the first system, hollow for the second.
func mark(b *strings.Builder, s *series, x, y float64) {
	fill := s.color
	if !s.first {
		fill = "white"
	}
	fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s" stroke="%s" stroke-width="2"/>`+"\n", x, y, fill, s.color)
}

// niceCeil rounds v up to a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8
// times a power of ten), so the axis has round ticks.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// thousands formats an axis value: 12000 as "12k".
func thousands(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%gk", math.Round(v/100)/10)
	}
	return fmt.Sprintf("%g", math.Round(v))
}
