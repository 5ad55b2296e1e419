package node

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// logCapture collects a node's JSON log lines.
type logCapture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// records returns the captured lines whose request_id is id.
func (l *logCapture) records(t *testing.T, id string) []map[string]any {
	t.Helper()
	l.mu.Lock()
	data := bytes.Clone(l.buf.Bytes())
	l.mu.Unlock()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			continue // hashicorp/raft's own lines are not JSON
		}
		if rec["request_id"] == id {
			out = append(out, rec)
		}
	}
	return out
}

// tracedCluster starts 3 nodes whose debug logs the test reads.
func tracedCluster(t *testing.T) (*testCluster, []*logCapture) {
	logs := make([]*logCapture, 3)
	for i := range logs {
		logs[i] = &logCapture{}
	}
	c := startCluster(t, clusterOpts{shards: 4, configure: func(i int, cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelDebug}))
	}})
	return c, logs
}

// A call through a node that does not lead the key's shard is logged under
// the caller's request ID by that node and by the leader it forwards to,
// and the ID comes back in the response header.
func TestRequestIDFollowsForwarding(t *testing.T) {
	c, logs := tracedCluster(t)
	key := "traced-key"
	sid := shard.Of([]byte(key), uint32(c.opts.shards))
	leader := c.leaderOf(sid)
	via := (leader + 1) % 3
	const id = "trace-test-0001"

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var hdr metadata.MD
	ctx = metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataRequestID, id)
	if _, err := c.kv(via).Put(ctx, &ringkvv1.PutRequest{Key: []byte(key), Value: []byte("v")}, grpc.Header(&hdr)); err != nil {
		t.Fatalf("Put through n%d = %v", via+1, err)
	}
	if got := hdr.Get(ringkvv1.MetadataRequestID); len(got) != 1 || got[0] != id {
		t.Errorf("response header %s = %v; want [%s]", ringkvv1.MetadataRequestID, got, id)
	}
	if l := c.leaderOf(sid); l != leader {
		t.Skipf("the leader of shard %d moved from n%d to n%d during the call", sid, leader+1, l+1)
	}
	check := func(i int, forwarded bool) {
		t.Helper()
		recs := logs[i].records(t, id)
		found := false
		for _, r := range recs {
			if r["method"] == "/ringkv.v1.KV/Put" && r["node"] == c.peers[i].ID && (r["forwarded"] == true) == forwarded {
				found = true
				t.Logf("n%d logged: %v", i+1, r)
			}
		}
		if !found {
			t.Errorf("n%d has no Put record with request_id %s (forwarded=%v); its records with that ID: %v", i+1, id, forwarded, recs)
		}
	}
	check(via, false)
	check(leader, true)
	// The third node never saw the call.
	if recs := logs[3-via-leader].records(t, id); len(recs) != 0 {
		t.Errorf("n%d, which the call did not pass, logged it: %v", 3-via-leader+1, recs)
	}
}

// Negative control: a call with no request ID, or an invalid one, gets one
// made by the node, which it returns and logs.
func TestRequestIDMadeWhenMissingOrInvalid(t *testing.T) {
	c, logs := tracedCluster(t)
	hex16 := regexp.MustCompile(`^[0-9a-f]{16}$`)
	for _, sent := range []string{"", "has spaces; and=signs", strings.Repeat("x", 65)} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if sent != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, ringkvv1.MetadataRequestID, sent)
		}
		var hdr metadata.MD
		_, err := c.kv(0).Get(ctx, &ringkvv1.GetRequest{Key: []byte("missing")}, grpc.Header(&hdr))
		cancel()
		if err == nil {
			t.Fatalf("Get(missing) = nil error; want NotFound")
		}
		got := hdr.Get(ringkvv1.MetadataRequestID)
		if len(got) != 1 || !hex16.MatchString(got[0]) {
			t.Fatalf("sent %q: response header %v; want one new 16-hex-digit ID", sent, got)
		}
		waitFor(t, 5*time.Second, "the made ID in n1's log", func() bool { return len(logs[0].records(t, got[0])) > 0 })
	}
}

// The client library sends a request ID with every call, the caller's when
// it gives one, and returns it with the call's error.
func TestClientSendsRequestID(t *testing.T) {
	c, logs := tracedCluster(t)
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := cl.Get(ctx, []byte("no-such-key"))
	if !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("Get = %v; want ErrNotFound", err)
	}
	id := client.TraceIDOf(err)
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(id) {
		t.Fatalf("TraceIDOf(%v) = %q; want 16 hex digits", err, id)
	}
	inLogs := func(id string) bool {
		for _, l := range logs {
			if len(l.records(t, id)) > 0 {
				return true
			}
		}
		return false
	}
	waitFor(t, 5*time.Second, "the client's request ID in a node's log", func() bool { return inLogs(id) })

	mine := "order-42:checkout"
	_, err = cl.Get(client.WithTraceID(ctx, mine), []byte("no-such-key"))
	if got := client.TraceIDOf(err); got != mine {
		t.Fatalf("TraceIDOf = %q; want the caller's %q", got, mine)
	}
	waitFor(t, 5*time.Second, "the caller's request ID in a node's log", func() bool { return inLogs(mine) })
}
