package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for concurrent use that signals when
// its content first contains want.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.seen != nil && strings.Contains(b.buf.String(), b.want) {
		close(b.seen)
		b.seen = nil
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// fillScan writes k0..k5 = v0..v5 and a key outside the prefix k.
func fillScan(t *testing.T, fc *fakeCluster) {
	t.Helper()
	for i := range 6 {
		ok(t, fc, "", "OK\n", "put", fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i))
	}
	ok(t, fc, "", "OK\n", "put", "other", "x")
}

// TestScanStreams checks that scan prints each page as it arrives: the
// second page is held until the first one is on stdout, which a scan that
// gathered its keys first would never print.
func TestScanStreams(t *testing.T) {
	for _, tc := range []struct {
		output    string
		firstPage string
		all       string
	}{
		{"table", "k0 v0\nk1 v1\nk2 v2\n", "k0 v0\nk1 v1\nk2 v2\nk3 v3\nk4 v4\nk5 v5\n"},
		{"json", `{"key":"k2","value":"v2","version":3,"create_version":3}` + "\n",
			`{"key":"k5","value":"v5","version":6,"create_version":6}` + "\n"},
	} {
		t.Run(tc.output, func(t *testing.T) {
			fc := newFakeCluster(t)
			fillScan(t, fc)
			gate := make(chan struct{})
			fc.scanGate = gate

			stdout := &syncBuffer{want: tc.firstPage, seen: make(chan struct{})}
			seen := stdout.seen
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"--endpoints", fc.endpoints(), "-o", tc.output, "--timeout", "15s",
					"scan", "--prefix", "k", "--page-size", "3"}, strings.NewReader(""), stdout, &stderr)
			}()
			select {
			case <-seen:
			case code := <-done:
				t.Fatalf("kvctl scan ended (exit %d, stderr %q) before the second page was served", code, stderr.String())
			case <-time.After(10 * time.Second):
				close(gate)
				<-done
				t.Fatalf("kvctl scan printed %q in 10s while its second page was held; want the first page at once", stdout.String())
			}
			close(gate)
			if code := <-done; code != 0 || !strings.HasSuffix(stdout.String(), tc.all) || strings.Count(stdout.String(), "\n") != 6 {
				t.Errorf("kvctl scan: exit %d, stdout %q, stderr %q; want 6 lines ending %q", code, stdout.String(), stderr.String(), tc.all)
			}
		})
	}
}

func TestScanLimitStopsFetching(t *testing.T) {
	fc := newFakeCluster(t)
	fillScan(t, fc)
	fc.scanGate = make(chan struct{}) // never opened: a second page would hang
	ok(t, fc, "", "k0\nk1\nk2\n", "scan", "--prefix", "k", "--page-size", "3", "--limit", "3", "--keys-only")
	ok(t, fc, "", "k0 v0\nk1 v1\n", "scan", "--prefix", "k", "--page-size", "3", "--limit", "2")
}

func TestScanPageTimeout(t *testing.T) {
	fc := newFakeCluster(t)
	fillScan(t, fc)
	fc.scanGate = make(chan struct{}) // never opened
	start := time.Now()
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "--timeout", "300ms", "scan", "--prefix", "k", "--page-size", "3")
	if r.code != 1 || r.stdout != "k0 v0\nk1 v1\nk2 v2\n" || !strings.Contains(r.stderr, "Error: scan: no page within --timeout 300ms after 3 keys") {
		t.Errorf("kvctl scan whose second page never comes: %v; want the first page, then exit 1 with a timeout error", r)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("kvctl scan --timeout 300ms took %v", d)
	}
}
