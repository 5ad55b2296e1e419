package node

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
)

// scrape fetches url and returns the status code and body.
func scrape(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// samples parses Prometheus text: series (name and labels, as printed) to
// value.
func samples(body string) map[string]float64 {
	out := map[string]float64{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out
}

// /metrics exposes request, Raft and cluster series with sane values
// after a small workload; /healthz answers; /readyz is ready only while
// every hosted shard has a leader.
func TestMetricsAndReadiness(t *testing.T) {
	dir := t.TempDir()
	withHTTP := func(c *Config) { c.HTTPAddr = "127.0.0.1:0" }
	n1 := startMember(t, dir, "n1", nil, withHTTP)
	waitFor(t, 30*time.Second, "n1 ready", n1.Ready)
	n2 := startMember(t, dir, "n2", []string{n1.Addr()}, withHTTP)
	n3 := startMember(t, dir, "n3", []string{n1.Addr()}, withHTTP)
	settledWith(t, n1, 3, "n1", "n2", "n3")
	nodes := []*Node{n1, n2, n3}

	if code, body := scrape(t, "http://"+n1.HTTPAddr()+"/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz = %d %q", code, body)
	}
	for _, n := range nodes {
		waitFor(t, 30*time.Second, "/readyz of "+n.ID(), func() bool {
			code, _ := scrape(t, "http://"+n.HTTPAddr()+"/readyz")
			return code == 200
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(ctx, []string{n1.Addr()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 20 {
		if _, err := c.Put(ctx, []byte(fmt.Sprintf("m-%d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}

	// A snapshot of shard 0 on n1, so that its snapshot series are not 0.
	n1.mu.Lock()
	r0 := n1.mu.shards[0]
	n1.mu.Unlock()
	if r0 == nil {
		t.Fatal("n1 hosts no replica of shard 0")
	}
	if err := r0.Snapshot(); err != nil {
		t.Fatal(err)
	}

	puts, proposals, movesDone, leaders := 0.0, 0.0, 0.0, map[string]float64{}
	for _, n := range nodes {
		code, body := scrape(t, "http://"+n.HTTPAddr()+"/metrics")
		if code != 200 {
			t.Fatalf("/metrics of %s: %d", n.ID(), code)
		}
		m := samples(body)
		puts += m[`ringkv_grpc_server_handled_total{code="OK",method="/ringkv.v1.KV/Put"}`]
		for k, v := range m {
			if strings.HasPrefix(k, "ringkv_shard_leader{") {
				leaders[k] += v
			}
		}
		proposals += m["ringkv_raft_proposal_seconds_count"]
		movesDone += m[`ringkv_rebalance_moves_finished_total{outcome="done"}`]
		if m["ringkv_raft_apply_seconds_count"] < 1 {
			t.Errorf("/metrics of %s: ringkv_raft_apply_seconds_count = %v; every replica applies", n.ID(), m["ringkv_raft_apply_seconds_count"])
		}
		syncs, writes := m["ringkv_raft_log_syncs_total"], m["ringkv_raft_log_writes_total"]
		if syncs < 1 || writes < syncs || m["ringkv_raft_log_disk_bytes"] < 1 {
			t.Errorf("/metrics of %s: log syncs %v, writes %v, disk bytes %v", n.ID(), syncs, writes, m["ringkv_raft_log_disk_bytes"])
		}
		if e := m[`ringkv_shard_log_entries{shard="0"}`]; e < 1 {
			t.Errorf("/metrics of %s: shard 0 log entries %v", n.ID(), e)
		}
		for _, want := range []string{`ringkv_cluster_members{state="active"}`, "ringkv_node_ready",
			`ringkv_shard_applied_index{shard="0"}`, `ringkv_shard_term{shard="0"}`, "go_goroutines", "process_resident_memory_bytes",
			`ringkv_shard_snapshot_bytes{shard="0"}`, `ringkv_shard_snapshot_index{shard="0"}`,
			"ringkv_snapshot_sent_bytes_total", "ringkv_snapshot_received_bytes_total",
			`ringkv_transport_appends_total{outcome="sent"}`, `ringkv_transport_appends_total{outcome="skipped"}`,
			"ringkv_transport_heartbeats_total", "ringkv_transport_heartbeat_batches_total"} {
			if _, ok := m[want]; !ok {
				t.Errorf("/metrics of %s lacks %s", n.ID(), want)
			}
		}
		if m[`ringkv_cluster_members{state="active"}`] != 3 || m["ringkv_node_ready"] != 1 || m[`ringkv_shard_applied_index{shard="0"}`] < 1 {
			t.Errorf("/metrics of %s: members %v, ready %v, applied %v", n.ID(),
				m[`ringkv_cluster_members{state="active"}`], m["ringkv_node_ready"], m[`ringkv_shard_applied_index{shard="0"}`])
		}
		if !strings.Contains(body, `ringkv_grpc_server_handling_seconds_bucket{code="OK",method="/ringkv.v1.KV/Put"`) && n == n1 && puts == 0 {
			t.Errorf("no Put latency histogram on %s", n.ID())
		}
	}
	if puts < 20 {
		t.Errorf("the nodes counted %v successful Puts; want at least the client's 20", puts)
	}
	// Growing from one node to three added two replicas to each of the 8
	// shards, one move each.
	if movesDone != 16 {
		t.Errorf("the nodes counted %v finished moves; want 16", movesDone)
	}
	if proposals < 20 {
		t.Errorf("the leaders counted %v proposals; want at least the client's 20 puts", proposals)
	}
	_, body := scrape(t, "http://"+n1.HTTPAddr()+"/metrics")
	if m := samples(body); m[`ringkv_shard_snapshot_bytes{shard="0"}`] < 1 || m[`ringkv_shard_snapshot_index{shard="0"}`] < 1 {
		t.Errorf("after a snapshot of shard 0, n1 reports snapshot bytes %v, index %v",
			m[`ringkv_shard_snapshot_bytes{shard="0"}`], m[`ringkv_shard_snapshot_index{shard="0"}`])
	}
	if len(leaders) != 8 {
		t.Errorf("leader series for %d shards; want 8", len(leaders))
	}
	for k, v := range leaders {
		if v != 1 {
			t.Errorf("%s summed over the nodes = %v; want exactly one leader", k, v)
		}
	}

	// With two of three nodes gone no shard can have a leader: n1 turns
	// not ready.
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer stopCancel()
	n2.Stop(stopCtx)
	n3.Stop(stopCtx)
	waitFor(t, 30*time.Second, "n1's /readyz to turn 503", func() bool {
		code, _ := scrape(t, "http://"+n1.HTTPAddr()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	if code, _ := scrape(t, "http://"+n1.HTTPAddr()+"/healthz"); code != 200 {
		t.Errorf("/healthz of a node without quorum = %d; want 200 (the process is up)", code)
	}
}
