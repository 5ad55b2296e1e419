package report

import (
	"strings"
	"testing"

	"github.com/ringkv/ringkv/test/jepsen-lite/checker"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

func TestCountOps(t *testing.T) {
	ops := []history.Op{
		{Workload: history.Register, Outcome: history.OK},
		{Workload: history.Register, Outcome: history.Unknown, Node: "n1"},
		{Workload: history.Register, Kind: history.CAS, Outcome: history.Fail, ConditionFailed: true},
		{Workload: history.Set, Outcome: history.Fail},
		{Workload: history.Set, Outcome: history.OK, Final: true},
	}
	c := CountOps(ops)
	if c.All != (Counts{Total: 4, OK: 1, Fail: 2, Unknown: 1}) {
		t.Errorf("all = %+v", c.All)
	}
	if c.Register.Total != 3 || c.Set.Total != 1 || c.FinalReads.OK != 1 || c.DirectReads.Unknown != 1 || c.CAS != (Counts{Total: 1, Fail: 1}) {
		t.Errorf("counts = %+v", c)
	}
}

func TestLineAndTable(t *testing.T) {
	s := &Summary{Verdict: checker.Invalid, Nemesis: "bridge", Seed: 42, Dir: "runs/x",
		Register:   checker.RegisterResult{Keys: []checker.KeyResult{{Key: "a", Verdict: checker.Invalid}, {Key: "b", Verdict: checker.Valid}}},
		Set:        checker.SetResult{Lost: []string{"set-1"}, Acknowledged: 7},
		Membership: Membership{JoinsStarted: 3, Joined: 2, RemovalsStarted: 1, Left: 1, MarkedDead: 4}}
	if !s.Failed() {
		t.Error("an invalid run is not Failed")
	}
	line := s.Line()
	for _, want := range []string{"bridge", "seed=42", "INVALID", "1/2 keys not valid", "cas ok=0 fail=0 unknown=0", "lost=1", "joined 2/3 removed 1/1 dead 4, settled", "runs/x"} {
		if !strings.Contains(line, want) {
			t.Errorf("Line() = %q; lacks %q", line, want)
		}
	}
	table := Table([]*Summary{s})
	if !strings.Contains(table, "| bridge | 42 |") || !strings.Contains(table, "| 1/2 | 7 / 1 / 0 | invalid | 2 / 1 / 4 |") {
		t.Errorf("Table:\n%s", table)
	}
	s.Verdict, s.Set.Lost, s.SettleError = checker.Valid, nil, "n3 still draining"
	if !s.Failed() || !strings.Contains(s.Line(), "NOT SETTLED") {
		t.Errorf("a valid run that never settled: Failed() = %v, Line() = %q", s.Failed(), s.Line())
	}
}
