package main

import (
	"context"
	"strings"
	"testing"
	"time"
)

// startWatch runs kvctl watch args until the returned stop is called; stop
// returns its exit code, stdout and stderr.
func (c *realCluster) startWatch(t *testing.T, args ...string) (out *syncBuffer, stop func() result) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, append([]string{"--endpoints", c.endpoints(), "--timeout", "10s"}, args...),
			strings.NewReader(""), &stdout, &stderr)
	}()
	stopped := false
	var res result
	stop = func() result {
		if !stopped {
			cancel()
			select {
			case c := <-code:
				res = result{c, stdout.String(), stderr.String()}
			case <-time.After(20 * time.Second):
				t.Fatal("kvctl watch did not stop within 20s of Ctrl-C")
			}
			stopped = true
		}
		return res
	}
	t.Cleanup(func() { stop() })
	return &stdout, stop
}

func waitOutput(t *testing.T, out *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("watch output %q never held %q", out.String(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRealWatch(t *testing.T) {
	c := startRealCluster(t)

	out, stop := c.startWatch(t, "watch", "--prefix", "jobs/")
	// The watch starts from the current state: wait for it to be up by
	// writing a marker until it shows.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "PUT jobs/marker") {
		if time.Now().After(deadline) {
			t.Fatalf("watch never showed the marker: %q", out.String())
		}
		c.ok(t, "", "OK\n", "put", "jobs/marker", "m")
		time.Sleep(100 * time.Millisecond)
	}
	c.ok(t, "", "OK\n", "put", "jobs/1", "build")
	c.ok(t, "", "OK\n", "put", "other/1", "ignored")
	c.ok(t, "", "1\n", "del", "jobs/1")
	waitOutput(t, out, "DELETE jobs/1\n")
	r := stop()
	if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "PUT jobs/1 build\nDELETE jobs/1\n") || strings.Contains(r.stdout, "other/") {
		t.Fatalf("kvctl watch --prefix jobs/ then Ctrl-C: %v; want PUT jobs/1 build then DELETE jobs/1, nothing of other/", r)
	}

	// Resume one key after a version: exactly the later changes.
	c.ok(t, "", "OK\n", "put", "cfg", "v1")
	c.ok(t, "", "OK\n", "put", "cfg", "v2")
	out, stop = c.startWatch(t, "-o", "json", "watch", "cfg", "--after-version", "1")
	waitOutput(t, out, `"value":"v2"`)
	r = stop()
	if !strings.Contains(r.stdout, `{"type":"put","key":"cfg","value":"v1","version":`) || r.code != 0 {
		t.Fatalf("kvctl -o json watch cfg --after-version 1: %v; want both puts as JSON", r)
	}

	c.fails(t, "", `--after "x": want SHARD=VERSION, two numbers, e.g. 3=1207`, "watch", "--prefix", "a", "--after", "x")
	c.fails(t, "", "--after-version resumes a watch of one key; with --prefix use --after SHARD=VERSION", "watch", "--prefix", "a", "--after-version", "3")
}
