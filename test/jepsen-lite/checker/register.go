// Package checker decides whether a jepsen-lite history is correct: the
// register workload must be linearizable per key (checked with porcupine),
// and the set workload must keep every acknowledged write and invent none.
package checker

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// Verdict is a checker's conclusion about one key or one workload.
type Verdict string

const (
	// Valid: no anomaly.
	Valid Verdict = "valid"
	// Invalid: an anomaly was found (not linearizable, a lost or phantom
	// write).
	Invalid Verdict = "invalid"
	// Inconclusive: the checker could not decide (it timed out, or final
	// reads did not complete).
	Inconclusive Verdict = "inconclusive"
)

// Worst returns the worst of the verdicts: Invalid over Inconclusive over
// Valid. No verdicts at all are Valid.
func Worst(vs ...Verdict) Verdict {
	out := Valid
	for _, v := range vs {
		switch {
		case v == Invalid:
			return Invalid
		case v == Inconclusive:
			out = Inconclusive
		}
	}
	return out
}

// registerInput is a register operation's input, as porcupine sees it.
type registerInput struct {
	key   string
	kind  history.Kind // Read, Write or CAS
	value string       // the value written (a CAS's new value)
	old   string       // the value a CAS expects
}

// casResult is what a CAS's completion says.
type casResult int

const (
	casUnknown casResult = iota // it may or may not have taken effect
	casOK                       // it swapped: the value was old
	casFailed                   // its comparison failed: the value was not old
)

// registerOutput is a read's or a CAS's result; writes have the zero value.
type registerOutput struct {
	value string    // a read's value
	empty bool      // a read found the key had no value
	cas   casResult // a CAS's completion
}

// opMeta is shown next to an operation in the visualization.
type opMeta struct {
	index   int
	node    string
	outcome history.Outcome
	final   bool
}

// RegisterModel is the sequential specification of one register per key:
// a write sets the value; a read returns the value of the last write, or
// empty before any; a compare-and-swap sets the value to new if it is old
// and otherwise changes nothing. The state is the value, "" for empty (the
// workload never writes "" and never expects "").
//
// A CAS's completion is checked like a read's: one that swapped (casOK)
// is legal only where the state is old; one whose comparison failed
// (casFailed) only where the state is not old, because a failed
// comparison is an observation of the register. A CAS of unknown outcome
// (casUnknown; checkKey gives it a return time after every other
// operation, as to a write of unknown outcome) is always legal: it swaps
// if the state is old and leaves it alone otherwise. Porcupine may place
// it anywhere after its call, the end included, so "it never took effect"
// is covered too.
//
// Partition splits a history by key, so that each key is checked on its
// own.
func RegisterModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range ops {
				k := op.Input.(registerInput).key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return "" },
		Step: func(state, input, output any) (bool, any) {
			st, in, out := state.(string), input.(registerInput), output.(registerOutput)
			switch in.kind {
			case history.Write:
				return true, in.value
			case history.CAS:
				switch out.cas {
				case casOK:
					return st == in.old, in.value
				case casFailed:
					return st != in.old, st
				}
				if st == in.old { // unknown: it took effect here
					return true, in.value
				}
				return true, st
			}
			if out.empty {
				return st == "", st
			}
			return st == out.value, st
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(registerInput), output.(registerOutput)
			switch in.kind {
			case history.Write:
				return fmt.Sprintf("put %s", in.value)
			case history.CAS:
				res := map[casResult]string{casOK: "ok", casFailed: "failed", casUnknown: "?"}[out.cas]
				return fmt.Sprintf("cas %s→%s %s", in.old, in.value, res)
			}
			if out.empty {
				return "get → ∅"
			}
			return fmt.Sprintf("get → %s", out.value)
		},
		DescribeState: func(state any) string {
			if state.(string) == "" {
				return "∅"
			}
			return state.(string)
		},
		DescribeOperationMetadata: func(info any) string {
			m, ok := info.(opMeta)
			if !ok {
				return ""
			}
			via := "client library"
			if m.node != "" {
				via = "node " + m.node + " directly"
			}
			s := fmt.Sprintf("op #%d via %s, %s", m.index, via, m.outcome)
			if m.outcome == history.Unknown {
				s += " (may take effect any time later)"
			}
			if m.final {
				s += ", final read"
			}
			return s
		},
	}
}

// KeyResult is the check of one register key.
type KeyResult struct {
	Key     string  `json:"key"`
	Verdict Verdict `json:"verdict"`
	// Checked counts the operations given to porcupine.
	Checked int `json:"checked_ops"`
	// Reads and Writes count the OK reads and the OK writes.
	Reads  int `json:"ok_reads"`
	Writes int `json:"ok_writes"`
	// CASOK counts the compare-and-swaps that swapped; CASFailed those
	// whose comparison failed (both are checked: a failed comparison
	// observes a value other than the expected one).
	CASOK     int `json:"ok_cas"`
	CASFailed int `json:"failed_cas"`
	// UnknownWrites counts writes and compare-and-swaps of unknown
	// outcome that are checked, as completing at the end of time.
	UnknownWrites int `json:"unknown_writes_checked"`
	// PrunedWrites counts writes and compare-and-swaps of unknown outcome
	// left out because they cannot matter (see prunable): porcupine's
	// search grows with every operation that never returned.
	PrunedWrites int `json:"unknown_writes_pruned"`
	// DroppedReads counts reads of unknown or failed outcome: they
	// constrain nothing.
	DroppedReads int `json:"dropped_reads"`
	// FailedWrites counts writes, and compare-and-swaps rejected for
	// another reason than their comparison (InvalidArgument), that
	// definitely did not happen and observed nothing.
	FailedWrites int `json:"failed_writes"`

	info porcupine.LinearizationInfo
}

// RegisterResult is the check of the register workload.
type RegisterResult struct {
	Verdict Verdict     `json:"verdict"`
	Keys    []KeyResult `json:"keys"`
}

// CheckRegister checks the Register operations of ops for linearizability,
// key by key, giving porcupine up to timeout per key.
func CheckRegister(ops []history.Op, timeout time.Duration) RegisterResult {
	byKey := map[string][]history.Op{}
	for _, op := range ops {
		if op.Workload == history.Register {
			byKey[op.Key] = append(byKey[op.Key], op)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var res RegisterResult
	var verdicts []Verdict
	for _, k := range keys {
		kr := checkKey(k, byKey[k], timeout)
		verdicts = append(verdicts, kr.Verdict)
		res.Keys = append(res.Keys, kr)
	}
	res.Verdict = Worst(verdicts...)
	return res
}

// prunable reports the writes and compare-and-swaps of unknown outcome
// that can be left out of the check without changing its verdict: those
// whose value no operation observes (no OK read returns it, no CAS
// expects it) and that no failed comparison can follow (none returns after
// the write's call). Such a write, in any linearization, can be moved to
// the end: until the next write the state would be its value, which
// nothing between can tell from the previous value, except a failed
// comparison (it needs the state to differ from what it expected, which
// the pruned write may be the only reason for), hence the second rule.
func prunable(ops []history.Op) func(history.Op) bool {
	observed := map[string]bool{}
	var lastFailedCAS int64 = -1 << 63
	for _, op := range ops {
		switch {
		case op.Kind == history.Read && op.Outcome == history.OK && !op.Empty:
			observed[op.Value] = true
		case op.Kind == history.CAS:
			observed[op.Old] = true
			if op.Outcome == history.Fail && op.ConditionFailed {
				lastFailedCAS = max(lastFailedCAS, op.Return)
			}
		}
	}
	return func(op history.Op) bool {
		return !observed[op.Value] && lastFailedCAS <= op.Call
	}
}

// checkKey checks the operations of one key.
func checkKey(key string, ops []history.Op, timeout time.Duration) KeyResult {
	kr := KeyResult{Key: key}
	var horizon int64
	for _, op := range ops {
		horizon = max(horizon, op.Call, op.Return)
	}
	horizon++ // after every call: "never returned" for the checker
	prune := prunable(ops)

	var pops []porcupine.Operation
	for _, op := range ops {
		p := porcupine.Operation{
			ClientId: op.Process,
			Input:    registerInput{key: key, kind: op.Kind, value: op.Value, old: op.Old},
			Output:   registerOutput{},
			Call:     op.Call,
			Return:   op.Return,
			Metadata: opMeta{index: op.Index, node: op.Node, outcome: op.Outcome, final: op.Final},
		}
		write := op.Kind == history.Write || op.Kind == history.CAS
		switch {
		case op.Kind == history.Write && op.Outcome == history.OK:
			kr.Writes++
		case op.Kind == history.CAS && op.Outcome == history.OK:
			kr.CASOK++
			p.Output = registerOutput{cas: casOK}
		case op.Kind == history.CAS && op.Outcome == history.Fail && op.ConditionFailed:
			kr.CASFailed++
			p.Output = registerOutput{cas: casFailed}
		case write && op.Outcome == history.Unknown:
			if prune(op) {
				kr.PrunedWrites++
				continue
			}
			kr.UnknownWrites++
			p.Output = registerOutput{cas: casUnknown}
			p.Return = horizon
		case write: // Fail, the request rejected: it did not happen
			kr.FailedWrites++
			continue
		case op.Outcome == history.OK: // a read
			kr.Reads++
			p.Output = registerOutput{value: op.Value, empty: op.Empty}
		default: // a read of unknown or failed outcome
			kr.DroppedReads++
			continue
		}
		pops = append(pops, p)
	}
	slices.SortStableFunc(pops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	kr.Checked = len(pops)

	res, info := porcupine.CheckOperationsVerbose(RegisterModel(), pops, timeout)
	kr.info = info
	switch res {
	case porcupine.Ok:
		kr.Verdict = Valid
	case porcupine.Illegal:
		kr.Verdict = Invalid
	default:
		kr.Verdict = Inconclusive
	}
	return kr
}

// Visualize writes porcupine's HTML visualization of the key's history,
// with the faults drawn as annotations on a "nemesis" row and the
// membership events (intervals with Fault 0, see history.Marks) as points
// on a "membership" row.
func (kr *KeyResult) Visualize(w io.Writer, faults []history.Interval) error {
	info := kr.info // AddAnnotations appends to a copy of the nil slice
	var notes []porcupine.Annotation
	for _, f := range faults {
		if f.Fault == 0 { // a membership event (history.Marks)
			notes = append(notes, porcupine.Annotation{
				Tag:             "membership",
				Start:           f.Start,
				Description:     f.Kind,
				Details:         f.Desc,
				BackgroundColor: "#c6daf7",
			})
			continue
		}
		notes = append(notes, porcupine.Annotation{
			Tag:             "nemesis",
			Start:           f.Start,
			End:             f.End,
			Description:     f.Kind,
			Details:         fmt.Sprintf("fault %d (%s): %s", f.Fault, f.Nemesis, f.Desc),
			BackgroundColor: "#f7c6c6",
		})
	}
	info.AddAnnotations(notes)
	return porcupine.Visualize(RegisterModel(), info, w)
}
