package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/ringkv/ringkv/loadgen"
)

// benchArgs are the flags of a short benchmark run against fc.
func benchArgs(fc *fakeCluster, args ...string) []string {
	base := []string{"--endpoints", fc.endpoints(), "bench", "--duration", "200ms", "--warmup", "50ms", "--keys", "20"}
	return append(base, args...)
}

func TestBenchPutJSON(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", benchArgs(fc, "put", "--clients", "4", "--conns", "2", "--value-size", "16", "-o", "json")...)
	if r.code != 0 {
		t.Fatalf("kvctl bench put: %v", r)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("output %q is not a report: %v", r.stdout, err)
	}
	if rep.Workload != "put" || rep.Clients != 4 || rep.Conns != 2 || rep.Prepopulate || rep.ReadPct != nil {
		t.Errorf("report settings %+v; want put, 4 clients, 2 conns, not prepopulated", rep)
	}
	if len(rep.Result.Ops) != 1 || rep.Result.Ops[0].Op != "put" {
		t.Fatalf("result ops %+v; want one put line", rep.Result.Ops)
	}
	put := rep.Result.Ops[0]
	if put.Count == 0 || put.Errors != 0 || put.Latency.P50 <= 0 || put.Latency.Max < put.Latency.P99 {
		t.Errorf("put line %+v; want successes, no error, sane latencies", put)
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	for k, v := range fc.data {
		if !strings.HasPrefix(k, loadgen.DefaultKeyPrefix) || len(v.data) != 16 {
			t.Errorf("wrote %q = %d bytes; want bench keys of 16-byte values", k, len(v.data))
		}
	}
}

func TestBenchGetPrepopulatesAndPrintsTable(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", benchArgs(fc, "get", "--clients", "3")...)
	if r.code != 0 {
		t.Fatalf("kvctl bench get: %v", r)
	}
	if !strings.Contains(r.stderr, "prepopulating 20 keys of 256 bytes") {
		t.Errorf("stderr %q; want it to say it prepopulates", r.stderr)
	}
	fc.mu.Lock()
	n := len(fc.data)
	fc.mu.Unlock()
	if n != 20 {
		t.Errorf("%d keys in the store; want the 20 prepopulated", n)
	}
	for _, want := range []string{"get: 3 clients on 1 connection,", "OPS/S", "P99.9 ms"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	// Every key exists: no read fails.
	if line := tableLine(r.stdout, "get"); len(line) < 4 || line[3] != "0" {
		t.Errorf("get line %q; want 0 errors", line)
	}
}

func TestBenchMixed(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", benchArgs(fc, "mixed", "--read-pct", "50", "--clients", "2", "--rate", "200", "-o", "json")...)
	if r.code != 0 {
		t.Fatalf("kvctl bench mixed: %v", r)
	}
	var rep benchReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("output %q: %v", r.stdout, err)
	}
	if rep.ReadPct == nil || *rep.ReadPct != 50 || len(rep.Result.Ops) != 2 {
		t.Fatalf("report %+v; want 50%% reads, a get and a put line", rep)
	}
	// Paced to 200/s for 200 ms: about 40 requests, never much more.
	if total := rep.Result.Ops[0].Count + rep.Result.Ops[1].Count; total == 0 || total > 45 {
		t.Errorf("%d requests in 200 ms at 200/s; want at most about 40", total)
	}
}

func TestBenchBadFlags(t *testing.T) {
	fc := newFakeCluster(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scan"}, `unknown workload "scan"`},
		{[]string{"put", "--read-pct", "50"}, "--read-pct is for the mixed workload only"},
		{[]string{"mixed", "--read-pct", "101"}, "--read-pct 101"},
		{[]string{"put", "--clients", "0"}, "--clients 0"},
		{[]string{"put", "--clients", "2", "--conns", "3"}, "--conns 3"},
		{[]string{"put", "--rate", "-1"}, "--rate -1"},
		{[]string{}, "accepts 1 arg"},
	} {
		r := kvctl(t, "", benchArgs(fc, tc.args...)...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("kvctl bench %s: %v; want exit 1 and %q", strings.Join(tc.args, " "), r, tc.want)
		}
	}
}

func TestBenchUnreachable(t *testing.T) {
	r := kvctl(t, "", "--endpoints", deadAddr(t), "--timeout", "300ms", "bench", "put", "--duration", "100ms")
	if r.code != 1 || !strings.Contains(r.stderr, "Error:") {
		t.Errorf("kvctl bench against a dead node: %v; want exit 1 with an error", r)
	}
}

// tableLine returns the fields of the table line that starts with op.
func tableLine(table, op string) []string {
	for _, l := range strings.Split(table, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == op {
			return f
		}
	}
	return nil
}
