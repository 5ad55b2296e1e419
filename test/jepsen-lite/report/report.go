// Package report writes what a jepsen-lite run found: the run folder's
// summary.json, one porcupine visualization per register key, and the
// one-line verdict and results table the command prints.
package report

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ringkv/ringkv/test/jepsen-lite/checker"
	"github.com/ringkv/ringkv/test/jepsen-lite/history"
)

// Files of a run folder.
const (
	HistoryFile  = "history.jsonl"
	TimelineFile = "timeline.jsonl"
	SummaryFile  = "summary.json"
	LogFile      = "run.log"
	NodesDir     = "nodes"         // node logs, <id>.log
	DataDir      = "data"          // node data directories; removed after a valid run
	VisualDir    = "linearization" // porcupine's HTML, <key>.html
)

// Counts splits operations by outcome.
type Counts struct {
	Total   int `json:"total"`
	OK      int `json:"ok"`
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

func (c *Counts) add(o history.Outcome) {
	c.Total++
	switch o {
	case history.OK:
		c.OK++
	case history.Fail:
		c.Fail++
	default:
		c.Unknown++
	}
}

// Ops counts the operations of a run.
type Ops struct {
	// All, Register and Set count the operations made while the nemesis
	// ran; FinalReads the reads made after healing.
	All        Counts `json:"all"`
	Register   Counts `json:"register"`
	Set        Counts `json:"set"`
	FinalReads Counts `json:"final_reads"`
	// DirectReads counts register reads sent to one node directly.
	DirectReads Counts `json:"direct_reads"`
	// CAS counts the register's compare-and-swaps (part of Register):
	// ok swapped, fail did not (nearly always a failed comparison),
	// unknown may have.
	CAS Counts `json:"cas"`
}

// CountOps counts ops.
func CountOps(ops []history.Op) Ops {
	var c Ops
	for _, op := range ops {
		if op.Final {
			c.FinalReads.add(op.Outcome)
			continue
		}
		c.All.add(op.Outcome)
		if op.Workload == history.Register {
			c.Register.add(op.Outcome)
			if op.Node != "" {
				c.DirectReads.add(op.Outcome)
			}
			if op.Kind == history.CAS {
				c.CAS.add(op.Outcome)
			}
		} else {
			c.Set.add(op.Outcome)
		}
	}
	return c
}

// Summary is a run's summary.json.
type Summary struct {
	// Verdict is the worst of the register and set verdicts; a run that
	// could not finish has an Error instead.
	Verdict checker.Verdict `json:"verdict"`
	Error   string          `json:"error,omitempty"`
	// Nemesis and Seed replay the run's choices; Command is the command
	// that does.
	Nemesis string `json:"nemesis"`
	Seed    int64  `json:"seed"`
	Command string `json:"command"`
	// UnsafeLocalReads is true for a negative-control run.
	UnsafeLocalReads bool `json:"unsafe_local_reads"`
	// Dir is the run folder.
	Dir string `json:"dir"`
	// Start is the wall-clock time of the run clock's zero.
	Start time.Time `json:"start"`
	// Duration is how long the workload and nemesis ran; Elapsed the
	// whole run, setup and checking included.
	Duration string `json:"duration"`
	Elapsed  string `json:"elapsed"`
	// Nodes, Shards and Keys describe the cluster and the registers.
	Nodes  int      `json:"nodes"`
	Shards int      `json:"shards"`
	Keys   []string `json:"register_keys"`
	// Ops counts operations by outcome.
	Ops Ops `json:"ops"`
	// Faults counts the faults injected; FaultErrors the failed injects
	// and heals.
	Faults      int `json:"faults"`
	FaultErrors int `json:"fault_errors"`
	// Recovery is how long the cluster took to report a leader for
	// every shard after the final heal ("" if it never did).
	Recovery string `json:"recovery"`
	// Settle is how long the rebalance took to settle after that (no
	// move pending or under way, every member active, every join listed,
	// every removed node gone); "" if it never did, and SettleError then
	// says what was still unsettled. The final reads come after it.
	Settle      string `json:"settle"`
	SettleError string `json:"settle_error,omitempty"`
	// Membership counts the membership changes of the run.
	Membership Membership `json:"membership"`
	// Register and Set are the checkers' results.
	Register checker.RegisterResult `json:"register"`
	Set      checker.SetResult      `json:"set"`
}

// Membership counts a run's membership changes: those the harness made and
// those the cluster reported.
type Membership struct {
	// JoinsStarted counts the nodes started on new hosts with --join;
	// Joined those of them the cluster listed as members.
	JoinsStarted int `json:"joins_started"`
	Joined       int `json:"joined"`
	// RemovalsStarted counts the removals the cluster committed (a
	// member set draining); Left the members that then left the member
	// list; Stopped those whose process the harness stopped and whose
	// host it removed.
	RemovalsStarted int `json:"removals_started"`
	Left            int `json:"left"`
	Stopped         int `json:"stopped"`
	// MarkedDead counts members the cluster marked dead; MarkedAlive dead
	// members it marked alive (joining) again.
	MarkedDead  int `json:"marked_dead"`
	MarkedAlive int `json:"marked_alive"`
	// Final is the member list after the run, "id=state" (its epoch in
	// FinalEpoch).
	Final      []string `json:"final_members"`
	FinalEpoch uint64   `json:"final_epoch"`
}

// Failed reports whether the run found an anomaly, could not decide, could
// not finish, or ended with a cluster that never settled.
func (s *Summary) Failed() bool {
	return s.Error != "" || s.Verdict != checker.Valid || s.SettleError != ""
}

// Line returns the run's one-line verdict.
func (s *Summary) Line() string {
	verdict := strings.ToUpper(string(s.Verdict))
	if s.Error != "" {
		verdict = "ERROR: " + s.Error
	}
	bad := 0
	for _, k := range s.Register.Keys {
		if k.Verdict != checker.Valid {
			bad++
		}
	}
	control := ""
	if s.UnsafeLocalReads {
		control = " [unsafe-local-reads]"
	}
	m := s.Membership
	settle := "settled"
	if s.SettleError != "" {
		settle = "NOT SETTLED"
	}
	return fmt.Sprintf("jepsen-lite %s seed=%d%s: %s; ops=%d ok=%d fail=%d unknown=%d faults=%d; cas ok=%d fail=%d unknown=%d; register %d/%d keys not valid; set lost=%d phantom=%d corrupt=%d unread=%d; joined %d/%d removed %d/%d dead %d, %s; %s",
		s.Nemesis, s.Seed, control, verdict, s.Ops.All.Total, s.Ops.All.OK, s.Ops.All.Fail, s.Ops.All.Unknown, s.Faults,
		s.Ops.CAS.OK, s.Ops.CAS.Fail, s.Ops.CAS.Unknown, bad, len(s.Register.Keys), len(s.Set.Lost), len(s.Set.Phantom), len(s.Set.Corrupt), len(s.Set.Unread),
		m.Joined, m.JoinsStarted, m.Left, m.RemovalsStarted, m.MarkedDead, settle, s.Dir)
}

// NewDir makes a run folder under root, named after the start time, the
// nemesis and the seed.
func NewDir(root string, start time.Time, nemesis string, seed int64) (string, error) {
	dir := filepath.Join(root, fmt.Sprintf("%s-%s-%d", start.Format("20060102T150405"), nemesis, seed))
	for _, d := range []string{dir, filepath.Join(dir, NodesDir), filepath.Join(dir, VisualDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// WriteSummary writes s to dir/summary.json.
func WriteSummary(dir string, s *Summary) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, SummaryFile), append(b, '\n'), 0o644)
}

// WriteVisualizations writes porcupine's HTML visualization of every
// register key to dir/linearization/<key>.html, with the faults drawn in.
func WriteVisualizations(dir string, reg *checker.RegisterResult, faults []history.Interval) error {
	for i := range reg.Keys {
		k := &reg.Keys[i]
		f, err := os.Create(filepath.Join(dir, VisualDir, k.Key+".html"))
		if err != nil {
			return err
		}
		err = k.Visualize(f, faults)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("visualize %s: %w", k.Key, err)
		}
	}
	return nil
}

// Table returns a Markdown table of runs: nemesis, seed, operations,
// unknowns, faults, verdict and membership changes.
func Table(sums []*Summary) string {
	var b strings.Builder
	b.WriteString("| nemesis | seed | ops | ok | unknown | faults | register keys valid | set acked / lost / phantom | verdict | joined / removed / marked dead |\n")
	b.WriteString("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n")
	for _, s := range sums {
		valid := 0
		for _, k := range s.Register.Keys {
			if k.Verdict == checker.Valid {
				valid++
			}
		}
		verdict := string(s.Verdict)
		switch {
		case s.Error != "":
			verdict = "error"
		case s.SettleError != "":
			verdict += ", not settled"
		}
		m := s.Membership
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d/%d | %d / %d / %d | %s | %d / %d / %d |\n",
			s.Nemesis, s.Seed, s.Ops.All.Total, s.Ops.All.OK, s.Ops.All.Unknown, s.Faults,
			valid, len(s.Register.Keys), s.Set.Acknowledged, len(s.Set.Lost), len(s.Set.Phantom), verdict,
			m.Joined, m.Left, m.MarkedDead)
	}
	return b.String()
}
