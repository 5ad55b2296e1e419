package checker

import (
	"bytes"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// w and r build register operations: [call, ret] on the run clock.
func w(proc int, key, value string, call, ret int64, out history.Outcome) history.Op {
	return history.Op{Workload: history.Register, Process: proc, Kind: history.Write, Key: key, Value: value, Call: call, Return: ret, Outcome: out}
}

func r(proc int, key, value string, call, ret int64, out history.Outcome) history.Op {
	return history.Op{Workload: history.Register, Process: proc, Kind: history.Read, Key: key, Value: value, Empty: value == "" && out == history.OK, Call: call, Return: ret, Outcome: out}
}

const ok, unknown, fail = history.OK, history.Unknown, history.Fail

func TestCheckRegister(t *testing.T) {
	tests := []struct {
		name string
		ops  []history.Op
		want Verdict
	}{
		{"empty history", nil, Valid},
		{"read of an empty register", []history.Op{r(0, "k", "", 0, 1, ok)}, Valid},
		{"write then read", []history.Op{w(0, "k", "a", 0, 1, ok), r(1, "k", "a", 2, 3, ok)}, Valid},
		{"empty read after an acknowledged write", []history.Op{w(0, "k", "a", 0, 1, ok), r(1, "k", "", 2, 3, ok)}, Invalid},
		{"stale read", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(0, "k", "b", 2, 3, ok), r(1, "k", "a", 4, 5, ok),
		}, Invalid},
		{"concurrent read may see either value", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(0, "k", "b", 2, 6, ok), r(1, "k", "a", 3, 4, ok), r(2, "k", "b", 3, 5, ok),
		}, Valid},
		{"reads disagree on the order", []history.Op{
			w(0, "k", "a", 0, 10, ok), w(1, "k", "b", 0, 10, ok),
			r(2, "k", "a", 11, 12, ok), r(2, "k", "b", 13, 14, ok), r(3, "k", "a", 15, 16, ok),
		}, Invalid},
		{"unknown write seen later", []history.Op{
			w(0, "k", "a", 0, 1, unknown), r(1, "k", "a", 50, 51, ok),
		}, Valid},
		{"unknown write never seen is pruned", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(1, "k", "b", 2, 3, unknown), r(2, "k", "a", 4, 5, ok),
		}, Valid},
		{"value seen before its write was invoked", []history.Op{
			r(1, "k", "a", 0, 1, ok), w(0, "k", "a", 2, 3, unknown),
		}, Invalid},
		{"failed write seen", []history.Op{
			w(0, "k", "a", 0, 1, fail), r(1, "k", "a", 2, 3, ok),
		}, Invalid},
		{"unknown reads constrain nothing", []history.Op{
			w(0, "k", "a", 0, 1, ok), r(1, "k", "zzz", 2, 3, unknown), r(2, "k", "", 4, 5, fail),
		}, Valid},
		{"keys are independent", []history.Op{
			w(0, "k1", "a", 0, 1, ok), w(1, "k2", "b", 0, 1, ok),
			r(2, "k1", "a", 2, 3, ok), r(3, "k2", "b", 2, 3, ok),
		}, Valid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := CheckRegister(tt.ops, 10*time.Second)
			if res.Verdict != tt.want {
				t.Errorf("CheckRegister = %s; want %s (keys: %+v)", res.Verdict, tt.want, res.Keys)
			}
		})
	}
}

func TestCheckRegisterCounts(t *testing.T) {
	res := CheckRegister([]history.Op{
		w(0, "k", "a", 0, 1, ok),
		w(1, "k", "b", 2, 3, unknown), // seen: checked
		w(2, "k", "c", 2, 3, unknown), // never seen: pruned
		w(3, "k", "d", 2, 3, fail),
		r(4, "k", "b", 10, 11, ok),
		r(5, "k", "", 10, 11, unknown),
	}, 10*time.Second)
	if len(res.Keys) != 1 {
		t.Fatalf("got %d keys; want 1", len(res.Keys))
	}
	got := res.Keys[0]
	got.info = porcupine.LinearizationInfo{} // not comparable
	want := KeyResult{Key: "k", Verdict: Valid, Checked: 3, Reads: 1, Writes: 1, UnknownWrites: 1, PrunedWrites: 1, DroppedReads: 1, FailedWrites: 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("key result = %+v; want %+v", got, want)
	}
}

func TestVisualize(t *testing.T) {
	res := CheckRegister([]history.Op{
		w(0, "k", "a", 0, 10, ok), w(0, "k", "b", 20, 30, ok), r(1, "k", "a", 40, 50, ok),
	}, 10*time.Second)
	var buf bytes.Buffer
	faults := []history.Interval{
		{Fault: 1, Nemesis: "isolate-leader", Kind: "partition", Desc: "isolate n1", Start: 15, End: 45},
		{Kind: "left", Desc: "n4 left the member list", Start: 35, End: 35},
	}
	if err := res.Keys[0].Visualize(&buf, faults); err != nil {
		t.Fatalf("Visualize: %v", err)
	}
	for _, want := range []string{"<html", "get → a", "isolate n1", "membership", "n4 left the member list"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("visualization lacks %q", want)
		}
	}
}

func sw(key, value string, out history.Outcome) history.Op {
	return history.Op{Workload: history.Set, Kind: history.Write, Key: key, Value: value, Outcome: out}
}

func sr(key, value string, out history.Outcome) history.Op {
	return history.Op{Workload: history.Set, Kind: history.Read, Key: key, Value: value, Empty: value == "" && out == history.OK, Outcome: out, Final: true}
}

func TestCheckSet(t *testing.T) {
	ops := []history.Op{
		sw("a", "va", ok), sr("a", "va", ok), // kept
		sw("b", "vb", ok), sr("b", "", ok), // lost
		sw("c", "vc", unknown), sr("c", "vc", ok), // unknown, present
		sw("d", "vd", unknown), sr("d", "", ok), // unknown, absent
		sw("e", "ve", fail), sr("e", "ve", ok), // phantom: failed write present
		sr("f", "vf", ok),                       // phantom: never written
		sw("g", "vg", ok), sr("g", "other", ok), // corrupt
		sr("h", "", ok), // never written, absent: fine
	}
	res := CheckSet(ops)
	if res.Verdict != Invalid {
		t.Errorf("verdict = %s; want %s", res.Verdict, Invalid)
	}
	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"lost", res.Lost, []string{"b"}},
		{"phantom", res.Phantom, []string{"e", "f"}},
		{"corrupt", res.Corrupt, []string{"g"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %q; want %q", c.name, c.got, c.want)
		}
	}
	if res.Attempted != 6 || res.Acknowledged != 3 || res.Unknown != 2 || res.Failed != 1 {
		t.Errorf("attempted/ack/unknown/failed = %d/%d/%d/%d; want 6/3/2/1", res.Attempted, res.Acknowledged, res.Unknown, res.Failed)
	}
	if res.UnknownPresent != 1 || res.UnknownAbsent != 1 || res.FinalReads != 8 {
		t.Errorf("unknown present/absent, final reads = %d/%d, %d; want 1/1, 8", res.UnknownPresent, res.UnknownAbsent, res.FinalReads)
	}
}

func TestCheckSetValidAndInconclusive(t *testing.T) {
	valid := CheckSet([]history.Op{sw("a", "va", ok), sr("a", "va", ok), sw("b", "vb", unknown), sr("b", "", ok)})
	if valid.Verdict != Valid {
		t.Errorf("verdict = %s; want %s (%+v)", valid.Verdict, Valid, valid)
	}
	unread := CheckSet([]history.Op{sw("a", "va", ok), sr("a", "", unknown)})
	if unread.Verdict != Inconclusive || !slices.Equal(unread.Unread, []string{"a"}) {
		t.Errorf("verdict, unread = %s, %q; want %s, [a]", unread.Verdict, unread.Unread, Inconclusive)
	}
}

func TestWorst(t *testing.T) {
	for _, tt := range []struct {
		in   []Verdict
		want Verdict
	}{
		{nil, Valid},
		{[]Verdict{Valid, Valid}, Valid},
		{[]Verdict{Valid, Inconclusive}, Inconclusive},
		{[]Verdict{Inconclusive, Invalid, Valid}, Invalid},
	} {
		if got := Worst(tt.in...); got != tt.want {
			t.Errorf("Worst(%v) = %s; want %s", tt.in, got, tt.want)
		}
	}
}
