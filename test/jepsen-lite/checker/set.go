package checker

import (
	"slices"

	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// SetResult is the check of the set workload: each key written at most
// once during the run, then every key read once the cluster was healed.
type SetResult struct {
	Verdict Verdict `json:"verdict"`
	// Attempted counts the keys written; Acknowledged, Failed and
	// Unknown split them by the write's outcome.
	Attempted    int `json:"attempted"`
	Acknowledged int `json:"acknowledged"`
	Failed       int `json:"failed"`
	Unknown      int `json:"unknown"`
	// UnknownPresent and UnknownAbsent split the unknown writes by what
	// the final read found; both are allowed.
	UnknownPresent int `json:"unknown_present"`
	UnknownAbsent  int `json:"unknown_absent"`
	// FinalReads counts the keys read at the end, including keys never
	// written (which must be absent).
	FinalReads int `json:"final_reads"`
	// Lost are acknowledged writes the final read did not find.
	Lost []string `json:"lost"`
	// Phantom are keys the final read found though they were never
	// written, or their write definitely failed.
	Phantom []string `json:"phantom"`
	// Corrupt are keys the final read found with a value other than the
	// one written.
	Corrupt []string `json:"corrupt"`
	// Unread are keys whose final read never succeeded: the check of
	// those keys is incomplete.
	Unread []string `json:"unread"`
}

// CheckSet checks the Set operations of ops: the writes made during the run
// against the final reads (ops marked Final).
func CheckSet(ops []history.Op) SetResult {
	type write struct {
		values  []string
		outcome history.Outcome // the best outcome seen: OK > Unknown > Fail
	}
	written := map[string]*write{}
	final := map[string]history.Op{}
	tried := map[string]bool{}
	for _, op := range ops {
		if op.Workload != history.Set {
			continue
		}
		switch {
		case op.Kind == history.Write:
			w := written[op.Key]
			if w == nil {
				w = &write{outcome: history.Fail}
				written[op.Key] = w
			}
			w.values = append(w.values, op.Value)
			if rank(op.Outcome) > rank(w.outcome) {
				w.outcome = op.Outcome
			}
		case op.Final:
			tried[op.Key] = true
			if op.Outcome == history.OK {
				final[op.Key] = op
			}
		}
	}

	var res SetResult
	res.FinalReads = len(tried)
	keys := make([]string, 0, len(written)+len(tried))
	for k := range written {
		keys = append(keys, k)
	}
	for k := range tried {
		if written[k] == nil {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		w := written[k]
		if w != nil {
			res.Attempted++
			switch w.outcome {
			case history.OK:
				res.Acknowledged++
			case history.Unknown:
				res.Unknown++
			default:
				res.Failed++
			}
		}
		r, ok := final[k]
		switch {
		case !ok:
			res.Unread = append(res.Unread, k)
		case r.Empty:
			if w != nil && w.outcome == history.OK {
				res.Lost = append(res.Lost, k)
			} else if w != nil && w.outcome == history.Unknown {
				res.UnknownAbsent++
			}
		case w == nil || w.outcome == history.Fail:
			res.Phantom = append(res.Phantom, k)
		case !slices.Contains(w.values, r.Value):
			res.Corrupt = append(res.Corrupt, k)
		case w.outcome == history.Unknown:
			res.UnknownPresent++
		}
	}
	switch {
	case len(res.Lost)+len(res.Phantom)+len(res.Corrupt) > 0:
		res.Verdict = Invalid
	case len(res.Unread) > 0:
		res.Verdict = Inconclusive
	default:
		res.Verdict = Valid
	}
	return res
}

func rank(o history.Outcome) int {
	switch o {
	case history.OK:
		return 2
	case history.Unknown:
		return 1
	}
	return 0
}
