package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// kvctl runs the command line args with stdin and returns what it did.
func kvctl(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &stdout, &stderr)
	return result{code, stdout.String(), stderr.String()}
}

// ok runs args and fails the test unless they succeed with stdout want.
func ok(t *testing.T, fc *fakeCluster, stdin, want string, args ...string) {
	t.Helper()
	args = append([]string{"--endpoints", fc.endpoints()}, args...)
	r := kvctl(t, stdin, args...)
	if r.code != 0 || r.stdout != want || r.stderr != "" {
		t.Errorf("kvctl %s: %v; want exit 0, stdout %q", strings.Join(args[2:], " "), r, want)
	}
}

// deadAddr returns an address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func TestPutGetDel(t *testing.T) {
	fc := newFakeCluster(t)
	ok(t, fc, "", "OK\n", "put", "greeting", "hello")
	ok(t, fc, "", "hello\n", "get", "greeting")
	ok(t, fc, "", "1\n", "del", "greeting")
	ok(t, fc, "", "0\n", "del", "greeting")

	r := kvctl(t, "", "--endpoints", fc.endpoints(), "get", "greeting")
	if r.code != 1 || r.stdout != "" || !strings.HasPrefix(r.stderr, "Error: ") || !strings.Contains(r.stderr, "not found") {
		t.Errorf("kvctl get (a missing key): %v; want exit 1, stderr \"Error: ... not found\"", r)
	}
}

func TestPutFromStdin(t *testing.T) {
	fc := newFakeCluster(t)
	ok(t, fc, "line 1\nline 2\n", "OK\n", "put", "k", "-")
	ok(t, fc, "", "line 1\nline 2\n\n", "get", "k") // the value as is, then a newline
}

func TestJSONOutput(t *testing.T) {
	fc := newFakeCluster(t)
	ok(t, fc, "", `{"version":1}`+"\n", "put", "k", "v1", "-o", "json")
	ok(t, fc, "", `{"version":2}`+"\n", "put", "k", "v2", "-o", "json")
	ok(t, fc, "", `{"key":"k","value":"v2","version":2,"create_version":1}`+"\n", "get", "k", "-o", "json")
	// A value that is not UTF-8 is base64.
	ok(t, fc, "\xff\xfe", "OK\n", "put", "bin", "-")
	ok(t, fc, "", `{"key":"bin","value":"//4=","value_encoding":"base64","version":3,"create_version":3}`+"\n", "get", "bin", "-o", "json")
	ok(t, fc, "", `{"deleted":true,"version":4}`+"\n", "del", "k", "-o", "json")
}

func TestEndpoints(t *testing.T) {
	fc := newFakeCluster(t)
	dead := deadAddr(t)

	t.Setenv(endpointsEnv, fc.endpoints())
	if r := kvctl(t, "", "put", "k", "v"); r.code != 0 || r.stdout != "OK\n" {
		t.Errorf("kvctl put with $%s set: %v; want OK", endpointsEnv, r)
	}

	t.Setenv(endpointsEnv, dead)
	if r := kvctl(t, "", "get", "k"); r.code != 1 || !strings.Contains(r.stderr, dead) {
		t.Errorf("kvctl get with $%s=%s (nothing there): %v; want exit 1 and an error that names it", endpointsEnv, dead, r)
	}
	if r := kvctl(t, "", "--endpoints", fc.endpoints(), "get", "k"); r.code != 0 || r.stdout != "v\n" {
		t.Errorf("kvctl --endpoints over a dead $%s: %v; want the value", endpointsEnv, r)
	}
}

func TestClusterStatusTable(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "cluster", "status")
	if r.code != 0 {
		t.Fatalf("kvctl cluster status: %v", r)
	}
	t.Logf("kvctl cluster status:\n%s", r.stdout)
	var rows [][]string
	for _, line := range strings.Split(r.stdout, "\n") {
		rows = append(rows, strings.Fields(line))
	}
	want := [][]string{
		{"Epoch:", "7"},
		{"Shards:", "4"},
		{"Replication", "factor:", "3"},
		{"Shards", "without", "a", "leader:", "1"},
		{"Answered", "by:", "n1"},
		{},
		{"MEMBER", "ADDRESS", "STATE", "LEADS", "REPLICAS"},
		{"n1", fc.nodes[0].addr, "active", "2", "4"},
		{"n2", fc.nodes[1].addr, "active", "0", "4"},
		{"n3", fc.nodes[2].addr, "active", "1", "4"},
		{},
		{"SHARD", "REPLICAS", "LEADER"},
		{"0", "n1,n2,n3", "n1"},
		{"1", "n2,n3,n1", "-"},
		{"2", "n3,n1,n2", "n3"},
		{"3", "n1,n2,n3", "n1"},
		{},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("kvctl cluster status =\n%s\nwant these fields per line:\n%v", r.stdout, want)
	}
}

func TestClusterStatusJSON(t *testing.T) {
	fc := newFakeCluster(t)
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "-o", "json", "cluster", "status")
	if r.code != 0 {
		t.Fatalf("kvctl -o json cluster status: %v", r)
	}
	var got statusJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("kvctl -o json cluster status printed %q: %v", r.stdout, err)
	}
	if got.Epoch != 7 || got.ShardCount != 4 || got.ReplicationFactor != 3 || got.Leaderless != 1 ||
		len(got.Members) != 3 || len(got.Shards) != 4 {
		t.Errorf("status = %+v; want epoch 7, 4 shards (1 leaderless), RF 3, 3 members", got)
	}
	if m := got.Members[0]; m != (memberJSON{ID: "n1", Address: fc.nodes[0].addr, State: "active", Leads: 2, Replicas: 4}) {
		t.Errorf("members[0] = %+v; want n1 leading 2 shards and holding 4", m)
	}
	if s := got.Shards[2]; s.ID != 2 || s.Leader != "n3" || s.LeaderTerm != 2 || strings.Join(s.Replicas, ",") != "n3,n1,n2" {
		t.Errorf("shards[2] = %+v; want shard 2 on n3,n1,n2 led by n3 in term 2", s)
	}
}

func TestErrors(t *testing.T) {
	fc := newFakeCluster(t)
	long := strings.Repeat("k", fakeMaxKey+1)
	for _, tc := range []struct {
		name       string
		args       []string
		wantStderr string // a substring
	}{
		{"invalid argument shown as is", []string{"put", long, "v"},
			fmt.Sprintf("Error: key is %d bytes; the limit is %d\n", fakeMaxKey+1, fakeMaxKey)},
		{"unknown output format", []string{"-o", "yaml", "get", "k"}, `unknown output format "yaml"`},
		{"missing argument", []string{"get"}, "accepts 1 arg(s), received 0"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := kvctl(t, "", append([]string{"--endpoints", fc.endpoints()}, tc.args...)...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.wantStderr) {
				t.Errorf("kvctl %s: %v; want exit 1 and stderr containing %q", strings.Join(tc.args, " "), r, tc.wantStderr)
			}
		})
	}
}

func TestTimeout(t *testing.T) {
	// A listener that accepts connections and never speaks: every call hangs.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	start := time.Now()
	r := kvctl(t, "", "--endpoints", lis.Addr().String(), "--timeout", "300ms", "get", "k")
	if r.code != 1 || !strings.Contains(r.stderr, "deadline exceeded") {
		t.Errorf("kvctl get against a silent node: %v; want exit 1, deadline exceeded", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("kvctl --timeout 300ms took %v", d)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		r := kvctl(t, "", "completion", shell)
		if r.code != 0 || !strings.Contains(r.stdout, "kvctl") {
			t.Errorf("kvctl completion %s: exit %d, %d bytes of stdout, stderr %q; want a script", shell, r.code, len(r.stdout), r.stderr)
		}
	}
}
