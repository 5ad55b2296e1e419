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

// c builds a compare-and-swap of old to value; a Fail is a failed
// comparison (ErrConditionFailed), the usual way a swap fails.
func c(proc int, key, old, value string, call, ret int64, out history.Outcome) history.Op {
	return history.Op{Workload: history.Register, Process: proc, Kind: history.CAS, Key: key, Old: old, Value: value,
		Call: call, Return: ret, Outcome: out, ConditionFailed: out == history.Fail}
}

const ok, unknown, fail = history.OK, history.Unknown, history.Fail

func checkOne(t *testing.T, ops []history.Op, want Verdict) {
	t.Helper()
	res := CheckRegister(ops, 10*time.Second)
	if res.Verdict != want {
		t.Errorf("CheckRegister = %s; want %s (keys: %+v)", res.Verdict, want, res.Keys)
	}
}

// TestCASDoubleSwapIsInvalid is a negative control: two swaps from the
// same old value cannot both succeed, whether they overlap or not, since
// the first one changes the value.
func TestCASDoubleSwapIsInvalid(t *testing.T) {
	t.Run("concurrent", func(t *testing.T) {
		checkOne(t, []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 5, ok), c(2, "k", "a", "c", 3, 4, ok),
		}, Invalid)
	})
	t.Run("one after the other", func(t *testing.T) {
		checkOne(t, []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, ok), c(2, "k", "a", "c", 4, 5, ok),
		}, Invalid)
	})
	t.Run("with a write of unknown outcome that could restore nothing", func(t *testing.T) {
		// The unknown write sets d, never a: it cannot make a valid again.
		checkOne(t, []history.Op{
			w(0, "k", "a", 0, 1, ok), w(3, "k", "d", 0, 1, unknown),
			c(1, "k", "a", "b", 2, 3, ok), c(2, "k", "a", "c", 4, 5, ok),
		}, Invalid)
	})
}

// TestCASSpuriousFailureIsInvalid is a negative control: a swap whose
// comparison failed while the value was, for its whole duration, the one
// it expected.
func TestCASSpuriousFailureIsInvalid(t *testing.T) {
	t.Run("read before and after", func(t *testing.T) {
		checkOne(t, []history.Op{
			w(0, "k", "a", 0, 1, ok), r(2, "k", "a", 2, 3, ok), c(1, "k", "a", "b", 4, 5, fail), r(2, "k", "a", 6, 7, ok),
		}, Invalid)
	})
	t.Run("swapped later from the same value", func(t *testing.T) {
		checkOne(t, []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, fail), c(2, "k", "a", "c", 4, 5, ok),
		}, Invalid)
	})
}

// TestCheckRegisterCAS checks interleavings of swaps with reads and writes,
// valid ones above all.
func TestCheckRegisterCAS(t *testing.T) {
	tests := []struct {
		name string
		ops  []history.Op
		want Verdict
	}{
		{"a chain of swaps", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, ok), c(2, "k", "b", "c", 4, 5, ok), r(3, "k", "c", 6, 7, ok),
		}, Valid},
		{"concurrent swaps from one value: one wins, the other fails", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 5, ok), c(2, "k", "a", "c", 3, 4, fail), r(3, "k", "b", 6, 7, ok),
		}, Valid},
		{"a failed swap observes a concurrent write", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(1, "k", "b", 2, 6, ok), c(2, "k", "a", "x", 3, 4, fail), r(3, "k", "a", 3, 4, ok),
		}, Valid},
		{"a swap on an empty register fails", []history.Op{
			c(1, "k", "a", "b", 0, 1, fail), r(2, "k", "", 2, 3, ok),
		}, Valid},
		{"a swap on an empty register cannot succeed", []history.Op{
			c(1, "k", "a", "b", 0, 1, ok),
		}, Invalid},
		{"a read after a swap sees the old value", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, ok), r(2, "k", "a", 4, 5, ok),
		}, Invalid},
		{"a swap from a value already overwritten", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(0, "k", "b", 2, 3, ok), c(1, "k", "a", "c", 4, 5, ok),
		}, Invalid},
		{"a swap of unknown outcome that took effect", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, unknown), r(2, "k", "b", 10, 11, ok),
		}, Valid},
		{"a swap of unknown outcome that did not take effect", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, unknown), r(2, "k", "a", 10, 11, ok),
		}, Valid},
		{"a swap of unknown outcome that took effect late", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, unknown), r(2, "k", "a", 10, 11, ok), r(2, "k", "b", 12, 13, ok),
		}, Valid},
		{"a swap of unknown outcome cannot swap from a value overwritten before it", []history.Op{
			w(0, "k", "a", 0, 1, ok), w(0, "k", "c", 2, 3, ok), c(1, "k", "a", "b", 4, 5, unknown), r(2, "k", "b", 6, 7, ok),
		}, Invalid},
		{"a swap of unknown outcome takes effect at most once", []history.Op{
			w(0, "k", "a", 0, 1, ok), c(1, "k", "a", "b", 2, 3, unknown),
			r(2, "k", "b", 4, 5, ok), w(0, "k", "a", 6, 7, ok), r(2, "k", "a", 8, 9, ok), r(2, "k", "b", 10, 11, ok),
		}, Invalid},
		{"a swap from the value of a write of unknown outcome", []history.Op{
			w(0, "k", "a", 0, 1, unknown), c(1, "k", "a", "b", 2, 3, ok), r(2, "k", "b", 4, 5, ok),
		}, Valid},
		{"a write of unknown outcome nobody read explains a failed swap", []history.Op{
			// v took effect between a and the failed swap, then z
			// overwrote it: nobody read v, but it must be checked.
			w(0, "k", "a", 0, 1, ok), w(1, "k", "v", 2, 3, unknown), c(2, "k", "a", "x", 4, 5, fail),
			w(0, "k", "z", 6, 7, ok), r(3, "k", "z", 8, 9, ok),
		}, Valid},
		{"a swap rejected for another reason observes nothing", []history.Op{
			w(0, "k", "a", 0, 1, ok),
			{Workload: history.Register, Process: 1, Kind: history.CAS, Key: "k", Old: "a", Value: "b", Call: 2, Return: 3, Outcome: fail},
			r(2, "k", "a", 4, 5, ok),
		}, Valid},
		{"a swap rejected for another reason did not happen", []history.Op{
			w(0, "k", "a", 0, 1, ok),
			{Workload: history.Register, Process: 1, Kind: history.CAS, Key: "k", Old: "a", Value: "b", Call: 2, Return: 3, Outcome: fail},
			r(2, "k", "b", 4, 5, ok),
		}, Invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkOne(t, tt.ops, tt.want) })
	}
}

// TestPrunable leaves out only the unknown writes nothing can tell apart
// from no write at all.
func TestPrunable(t *testing.T) {
	ops := []history.Op{
		w(0, "k", "a", 0, 1, ok),
		w(1, "k", "seen", 2, 3, unknown),          // read below: kept
		c(2, "k", "a", "expected", 2, 3, unknown), // a swap expects it: kept
		w(3, "k", "early", 2, 3, unknown),         // a failed swap returns after its call: kept
		r(4, "k", "seen", 4, 5, ok),
		c(5, "k", "expected", "y", 6, 7, ok),
		c(6, "k", "q", "r", 8, 9, fail),
		w(7, "k", "late", 10, 11, unknown), // after every failed swap, never observed: pruned
		c(8, "k", "y", "late-cas", 10, 11, unknown),
	}
	prune := prunable(ops)
	var got []string
	for _, op := range ops {
		if op.Outcome == unknown && prune(op) {
			got = append(got, op.Value)
		}
	}
	if want := []string{"late", "late-cas"}; !slices.Equal(got, want) {
		t.Errorf("pruned %q; want %q", got, want)
	}
}

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
		w(2, "k", "c", 2, 3, unknown), // never seen, but a failed swap follows: checked
		w(3, "k", "d", 2, 3, fail),
		r(4, "k", "b", 10, 11, ok),
		r(5, "k", "", 10, 11, unknown),
		c(6, "k", "b", "e", 12, 13, ok),
		c(7, "k", "b", "f", 14, 15, fail),
		c(8, "k", "e", "g", 16, 17, unknown), // after every failed swap, never observed: pruned
	}, 10*time.Second)
	if len(res.Keys) != 1 {
		t.Fatalf("got %d keys; want 1", len(res.Keys))
	}
	got := res.Keys[0]
	got.info = porcupine.LinearizationInfo{} // not comparable
	want := KeyResult{Key: "k", Verdict: Valid, Checked: 6, Reads: 1, Writes: 1, CASOK: 1, CASFailed: 1, UnknownWrites: 2, PrunedWrites: 1, DroppedReads: 1, FailedWrites: 1}
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
