package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// seedRebalance freezes fc's rebalancer in the middle of a rebalance: 1
// move pending, 2 active (one started 90s before start, one 5s before),
// 12 finished (the 11th aborted), 3.1 MiB sent.
func seedRebalance(fc *fakeCluster, start time.Time) {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	fc.frozen = true
	fc.pending = []*ringkvv1.Move{{Shard: 3, FromNode: "n1", ToNode: "n4", Phase: "pending"}}
	fc.active = []*ringkvv1.Move{
		{Shard: 1, FromNode: "n2", ToNode: "n4", Phase: "active", StartedUnixMs: start.Add(-90 * time.Second).UnixMilli(), Bytes: 512 << 10},
		{Shard: 2, ToNode: "n4", Phase: "active", StartedUnixMs: start.Add(-5 * time.Second).UnixMilli()},
	}
	fc.finished = nil
	for i := range 12 {
		m := &ringkvv1.Move{Shard: uint32(i % fakeShards), FromNode: "n3", ToNode: "n4", Phase: "done",
			StartedUnixMs:  start.Add(time.Duration(i-20) * time.Second).UnixMilli(),
			FinishedUnixMs: start.Add(time.Duration(i-19) * time.Second).UnixMilli(),
			Bytes:          1 << 20}
		if i == 10 {
			m.Phase, m.Bytes, m.Reason = "aborted", 0, "n4 unreachable"
		}
		fc.finished = append(fc.finished, m)
	}
	fc.finishedSince = 12
	fc.bytesSince = 3_250_586 // 3.1 MiB
}

func TestRebalanceStatusTable(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	start := time.Now()
	seedRebalance(fc, start)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "rebalance", "status", "--finished", "3")
	if r.code != 0 {
		t.Fatalf("kvctl rebalance status: %v", r)
	}
	t.Logf("kvctl rebalance status:\n%s", r.stdout)
	got := lines(r.stdout)
	// STARTED and FINISHED are relative to now: a slow run may tick a
	// second further.
	want := []string{
		`Epoch: +7`,
		`Moves: +1 pending, 2 active, 12 finished since the target last changed`,
		`Moved: +3\.1 MiB`,
		`Throttle: +2 moves per node`,
		``,
		`\[################----\] 80% 12/15 moves, 3\.1 MiB`,
		``,
		`Active moves:`,
		`SHARD +MOVE +PHASE +STARTED +BYTES`,
		`1 +n2→n4 +active +1m3[01]s ago +512\.0 KiB`,
		`2 +-→n4 +active +[56]s ago +0 B`,
		``,
		`Finished moves, newest last:`,
		`SHARD +MOVE +PHASE +FINISHED +TOOK +BYTES +REASON`,
		`1 +n3→n4 +done +1[01]s ago +1s +1\.0 MiB +-`,
		`2 +n3→n4 +aborted +(9|10)s ago +1s +0 B +n4 unreachable`,
		`3 +n3→n4 +done +[89]s ago +1s +1\.0 MiB +-`,
	}
	if len(got) != len(want) {
		t.Fatalf("kvctl rebalance status printed %d lines; want %d:\n%s", len(got), len(want), strings.Join(want, "\n"))
	}
	for i := range want {
		if !regexp.MustCompile("^" + want[i] + " *$").MatchString(got[i]) {
			t.Errorf("line %d = %q; want it to match %q", i+1, got[i], want[i])
		}
	}
}

func TestRebalanceStatusNothingToDo(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "rebalance", "status")
	want := "Epoch:     7\n" +
		"Moves:     0 pending, 0 active, 0 finished since the target last changed\n" +
		"Moved:     0 B\n" +
		"Throttle:  2 moves per node\n" +
		"\n" +
		"[####################] 100% 0/0 moves, 0 B\n" +
		"\n" +
		"No move pending or active: the placement has reached its target.\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("kvctl rebalance status (a balanced cluster): %v; want stdout\n%s", r, want)
	}
}

func TestRebalanceStatusJSON(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	start := time.Now()
	seedRebalance(fc, start)
	// --finished limits the table only: JSON has every finished move.
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "rebalance", "status", "--finished", "3")
	if r.code != 0 {
		t.Fatalf("kvctl -o json rebalance status: %v", r)
	}
	if n := strings.Count(r.stdout, "\n"); n != 1 {
		t.Errorf("kvctl -o json rebalance status printed %d lines; want 1", n)
	}
	var got rebalanceJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("kvctl -o json rebalance status printed %q: %v", r.stdout, err)
	}
	if got.Epoch != 7 || got.Done || got.Progress != 0.8 || got.FinishedSinceChange != 12 ||
		got.BytesSinceChange != 3_250_586 || got.MaxMovesPerNode != 2 {
		t.Errorf("status %+v; want epoch 7, not done, progress 0.8, 12 finished, 3250586 bytes, 2 moves per node", got)
	}
	if len(got.Pending) != 1 || len(got.Active) != 2 || len(got.Finished) != 12 {
		t.Fatalf("%d pending, %d active, %d finished; want 1, 2, 12", len(got.Pending), len(got.Active), len(got.Finished))
	}
	ms := func(d time.Duration) time.Time { return time.UnixMilli(start.Add(d).UnixMilli()) }
	for _, tc := range []struct {
		name string
		got  moveJSON
		want moveJSON
	}{
		{"pending[0]", got.Pending[0], moveJSON{Shard: 3, From: "n1", To: "n4", Phase: "pending"}},
		{"active[0]", got.Active[0], moveJSON{Shard: 1, From: "n2", To: "n4", Phase: "active", Started: ms(-90 * time.Second), Bytes: 512 << 10}},
		{"active[1]", got.Active[1], moveJSON{Shard: 2, To: "n4", Phase: "active", Started: ms(-5 * time.Second)}},
		{"finished[10]", got.Finished[10], moveJSON{Shard: 2, From: "n3", To: "n4", Phase: "aborted",
			Started: ms(-10 * time.Second), Finished: ms(-9 * time.Second), Reason: "n4 unreachable"}},
	} {
		g, w := tc.got, tc.want
		if !g.Started.Equal(w.Started) || !g.Finished.Equal(w.Finished) {
			t.Errorf("%s started %v, finished %v; want %v, %v", tc.name, g.Started, g.Finished, w.Started, w.Finished)
		}
		g.Started, g.Finished, w.Started, w.Finished = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if g != w {
			t.Errorf("%s = %+v; want %+v", tc.name, g, w)
		}
	}
	// A pending move has not started: no times at all.
	if strings.Contains(r.stdout, `"phase":"pending","started"`) {
		t.Errorf("a pending move has a start time in %s", r.stdout)
	}
}

func TestRebalanceWatch(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4") // 3 moves onto n4; the fake makes 2 at a time, one step per refresh
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "rebalance", "status", "--watch", "--interval", "1ms")
	// Not a terminal: one line per refresh.
	want := "[--------------------] 0% 0/3 moves, 0 B\n" +
		"[--------------------] 0% 0/3 moves, 0 B\n" +
		"[#############-------] 66% 2/3 moves, 3.0 MiB\n" +
		"[####################] 100% 3/3 moves, 4.5 MiB\n" +
		"Rebalance done: 3 moves, 4.5 MiB since the target last changed.\n"
	if r.code != 0 || r.stdout != want {
		t.Errorf("kvctl rebalance status --watch: %v; want stdout\n%s", r, want)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if fc.rebalanceCalls != 4 {
		t.Errorf("%d RebalanceStatus calls; want 4 (the watch ends when done)", fc.rebalanceCalls)
	}
}

func TestRebalanceWatchJSON(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4")
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "rebalance", "status", "-w", "--interval", "1ms")
	if r.code != 0 {
		t.Fatalf("kvctl -o json rebalance status --watch: %v", r)
	}
	var progress []string
	var last rebalanceJSON
	for i, line := range lines(r.stdout) {
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		progress = append(progress, fmt.Sprintf("%d/%d/%d/%v/%.2f",
			len(last.Pending), len(last.Active), last.FinishedSinceChange, last.Done, last.Progress))
	}
	// pending/active/finished/done/progress per refresh.
	want := []string{"3/0/0/false/0.00", "1/2/0/false/0.00", "0/1/2/false/0.67", "0/0/3/true/1.00"}
	if !slices.Equal(progress, want) {
		t.Errorf("kvctl -o json rebalance status --watch refreshes = %v; want %v", progress, want)
	}
	if len(last.Finished) != 3 || last.Finished[2].Phase != "done" || last.Finished[2].Bytes != fakeMoveBytes {
		t.Errorf("last refresh finished moves %+v; want 3 done, %d bytes each", last.Finished, fakeMoveBytes)
	}
}

func TestRebalanceWatchInterrupted(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4")
	fc.mu.Lock()
	fc.frozen = true // never done
	fc.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Interrupt the watch, as Ctrl-C does, once it has printed 3 lines.
	stdout := &cancelAfterLines{n: 3, cancel: cancel}
	var stderr strings.Builder
	code := run(ctx, []string{"--endpoints", fc.endpoints(), "rebalance", "status", "--watch", "--interval", "1ms"},
		strings.NewReader(""), stdout, &stderr)
	if want := strings.Repeat("[--------------------] 0% 0/3 moves, 0 B\n", 3); code != 0 || stdout.String() != want {
		t.Errorf("kvctl rebalance status --watch, interrupted after 3 refreshes: exit %d, stdout %q, stderr %q; want exit 0, stdout %q",
			code, stdout.String(), stderr.String(), want)
	}
}

// cancelAfterLines is a writer that calls cancel once n lines are written
// to it.
type cancelAfterLines struct {
	strings.Builder
	n      int
	cancel context.CancelFunc
}

func (w *cancelAfterLines) Write(p []byte) (int, error) {
	n, err := w.Builder.Write(p)
	if strings.Count(w.String(), "\n") >= w.n {
		w.cancel()
	}
	return n, err
}

func TestRebalanceStatusErrors(t *testing.T) {
	fc := newFakeCluster(t)
	for _, tc := range []struct {
		name string
		args []string
		want string // a substring of stderr
	}{
		{"bad interval", []string{"rebalance", "status", "--watch", "--interval", "0s"}, "--interval 0s: must be > 0"},
		{"bad finished", []string{"rebalance", "status", "--finished", "-1"}, "--finished -1: must be >= 0"},
		{"node refuses", []string{"rebalance", "status"}, "Error: ringkv: rebalance status: unimplemented: no rebalancer here\n"},
		{"node refuses a watch", []string{"rebalance", "status", "--watch", "--interval", "1ms"}, "Error: ringkv: rebalance status: unimplemented: no rebalancer here\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc.mu.Lock()
			fc.rebalanceErr = nil
			if strings.HasPrefix(tc.name, "node refuses") {
				fc.rebalanceErr = status.Error(codes.Unimplemented, "no rebalancer here")
			}
			fc.mu.Unlock()
			r := kvctl(t, "", append([]string{"--endpoints", fc.endpoints()}, tc.args...)...)
			if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("kvctl %s: %v; want exit 1, no stdout, stderr containing %q", strings.Join(tc.args, " "), r, tc.want)
			}
		})
	}
}

func TestRebalanceStatusExtraArgument(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "rebalance", "status", "now")
	if want := `unknown command "now" for "kvctl rebalance status"`; r.code != 1 || !strings.Contains(r.stderr, want) {
		t.Errorf("kvctl rebalance status now: %v; want exit 1 and %q", r, want)
	}
}

func TestProgressLine(t *testing.T) {
	for _, tc := range []struct {
		pending, active int
		finished, bytes uint64
		want            string
	}{
		{0, 0, 0, 0, "[####################] 100% 0/0 moves, 0 B"},
		{10, 5, 12, 3_250_586, "[########------------] 44% 12/27 moves, 3.1 MiB"},
		{0, 1, 26, 1 << 30, "[###################-] 96% 26/27 moves, 1.0 GiB"},
		{1, 0, 99, 1023, "[###################-] 99% 99/100 moves, 1023 B"}, // never 100% before done
		{3, 0, 0, 0, "[--------------------] 0% 0/3 moves, 0 B"},
	} {
		st := rebalanceStatusOf(tc.pending, tc.active, tc.finished, tc.bytes)
		if got := progressLine(st); got != tc.want {
			t.Errorf("progressLine(%d pending, %d active, %d finished, %d bytes) = %q; want %q",
				tc.pending, tc.active, tc.finished, tc.bytes, got, tc.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	for _, tc := range []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{3 << 20, "3.0 MiB"}, {5 << 30, "5.0 GiB"}, {1 << 40, "1.0 TiB"}, {1<<64 - 1, "16.0 EiB"},
	} {
		if got := humanBytes(tc.n); got != tc.want {
			t.Errorf("humanBytes(%d) = %q; want %q", tc.n, got, tc.want)
		}
	}
}

// rebalanceStatusOf returns a status with that many pending, active and
// finished moves, and bytes sent.
func rebalanceStatusOf(pending, active int, finished, bytes uint64) *client.RebalanceStatus {
	return &client.RebalanceStatus{
		Pending:             make([]client.Move, pending),
		Active:              make([]client.Move, active),
		FinishedSinceChange: finished,
		BytesSinceChange:    bytes,
	}
}

func TestRebalanceWatchRedraws(t *testing.T) {
	fc := newFakeClusterOf(t, 4, 3)
	fc.join("n4")
	ctx := t.Context()
	c, err := client.New(ctx, strings.Split(fc.endpoints(), ","))
	if err != nil {
		t.Fatalf("client.New: %v", err)
	}
	defer c.Close()
	a := &app{output: outputTable, timeout: defaultTimeout}
	var out strings.Builder
	if err := a.watchRebalance(ctx, c, &out, rebalanceFlags{interval: time.Millisecond, finished: 10}, true); err != nil {
		t.Fatalf("watchRebalance (redrawing) = %v", err)
	}
	// One screen per refresh, each cleared first; the last one done.
	screens := strings.Split(out.String(), "\033[H\033[2J")
	if len(screens) != 5 || screens[0] != "" {
		t.Fatalf("watchRebalance (redrawing) drew %d screens; want 4, each after a clear:\n%q", len(screens)-1, out.String())
	}
	for i, want := range []string{"0% 0/3 moves", "0% 0/3 moves", "66% 2/3 moves", "100% 3/3 moves"} {
		s := screens[i+1]
		if !strings.HasPrefix(s, "Every 1ms: kvctl rebalance status\n\nEpoch:") || !strings.Contains(s, "] "+want) {
			t.Errorf("screen %d =\n%s\nwant the header, then the status at %q", i+1, s, want)
		}
	}
	if last := screens[4]; !strings.Contains(last, "Finished moves, newest last:") ||
		!strings.HasSuffix(last, "Rebalance done: 3 moves, 4.5 MiB since the target last changed.\n") {
		t.Errorf("last screen =\n%s\nwant the finished moves, then the end of the rebalance", last)
	}
}
