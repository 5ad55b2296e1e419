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
	write bool
	value string // the value written
}

// registerOutput is a read's result; writes have the zero value.
type registerOutput struct {
	value string
	empty bool // the key had no value
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
// empty before any. The state is the value, "" for empty (the workload
// never writes ""). Partition splits a history by key, so that each key is
// checked on its own.
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
			in := input.(registerInput)
			if in.write {
				return true, in.value
			}
			out := output.(registerOutput)
			if out.empty {
				return state.(string) == "", state
			}
			return state.(string) == out.value, state
		},
		DescribeOperation: func(input, output any) string {
			in := input.(registerInput)
			if in.write {
				return fmt.Sprintf("put %s", in.value)
			}
			out := output.(registerOutput)
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
	// UnknownWrites counts writes of unknown outcome that some read
	// observed; they are checked as completing at the end of time.
	UnknownWrites int `json:"unknown_writes_checked"`
	// PrunedWrites counts writes of unknown outcome that no read
	// observed. They are left out: a write nobody read can be placed
	// last in any linearization, so dropping it changes no verdict and
	// keeps porcupine's search small.
	PrunedWrites int `json:"unknown_writes_pruned"`
	// DroppedReads counts reads of unknown or failed outcome: they
	// constrain nothing.
	DroppedReads int `json:"dropped_reads"`
	// FailedWrites counts writes that definitely did not happen.
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

// checkKey checks the operations of one key.
func checkKey(key string, ops []history.Op, timeout time.Duration) KeyResult {
	kr := KeyResult{Key: key}
	observed := map[string]bool{}
	var horizon int64
	for _, op := range ops {
		if op.Kind == history.Read && op.Outcome == history.OK && !op.Empty {
			observed[op.Value] = true
		}
		horizon = max(horizon, op.Call, op.Return)
	}
	horizon++ // after every call: "never returned" for the checker

	var pops []porcupine.Operation
	for _, op := range ops {
		p := porcupine.Operation{
			ClientId: op.Process,
			Input:    registerInput{key: key, write: op.Kind == history.Write, value: op.Value},
			Output:   registerOutput{},
			Call:     op.Call,
			Return:   op.Return,
			Metadata: opMeta{index: op.Index, node: op.Node, outcome: op.Outcome, final: op.Final},
		}
		switch {
		case op.Kind == history.Write && op.Outcome == history.OK:
			kr.Writes++
		case op.Kind == history.Write && op.Outcome == history.Unknown:
			if !observed[op.Value] {
				kr.PrunedWrites++
				continue
			}
			kr.UnknownWrites++
			p.Return = horizon
		case op.Kind == history.Write: // Fail: it did not happen
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
