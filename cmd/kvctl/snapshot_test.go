package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/node"
)

// snapshot save, status and restore against real clusters: a backup of a
// 4-shard cluster restored into a 3-shard one; damaged files refused by
// status and restore; a non-empty cluster refused unless --force.
func TestSnapshotSaveStatusRestore(t *testing.T) {
	src := startRealCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := client.New(ctx, src.addrs)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 200
	for i := range n {
		if _, err := cl.Put(ctx, fmt.Appendf(nil, "snap/%03d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	src.ok(t, "", "OK\n", "put", "session", "alice", "--ttl", "1h")

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.rkv")
	r := src.run(t, "", "snapshot", "save", file)
	if r.code != 0 || !regexp.MustCompile(`^saved 201 keys of 4 shards \(.+\) to .*backup.rkv in .+\n$`).MatchString(r.stdout) {
		t.Fatalf("snapshot save: %v; want saved 201 keys of 4 shards", r)
	}
	if lines := strings.Count(r.stderr, "\n"); lines != realShards || !strings.HasPrefix(r.stderr, "saved shard 1/4: ") {
		t.Fatalf("snapshot save progress %q; want a line per shard", r.stderr)
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("%s.part left behind: %v", file, err)
	}
	src.fails(t, "", file+" exists; remove it or save to another file", "snapshot", "save", file)

	r = kvctl(t, "", "snapshot", "status", file)
	if r.code != 0 || !strings.Contains(r.stdout, "shards     4\n") || !strings.Contains(r.stdout, "keys       201\n") ||
		!strings.Contains(r.stdout, "checksums  ok\n") {
		t.Fatalf("snapshot status: %v; want 4 shards, 201 keys, checksums ok", r)
	}
	var j snapshotJSON
	r = kvctl(t, "", "-o", "json", "snapshot", "status", file)
	if r.code != 0 || jsonUnmarshal(r.stdout, &j) != nil || j.Keys != 201 || len(j.Shards) != 4 || j.Format != 1 {
		t.Fatalf("snapshot status -o json: %v; want 201 keys in 4 shards", r)
	}

	// Damaged copies: every one refused by status and by restore.
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(string(good))
	flipped[len(flipped)/2] ^= 1
	damaged := map[string][]byte{
		"flipped.rkv":   flipped,
		"truncated.rkv": good[:len(good)-10],
		"foreign.rkv":   []byte("#!/bin/sh\necho not a backup\n"),
	}
	want := map[string]string{
		"flipped.rkv":   "corrupt backup file: frame at byte ",
		"truncated.rkv": "corrupt backup file: truncated: the file ends at byte ",
		"foreign.rkv":   "not a ringkv backup file",
	}
	dst := startRealCluster(t, func(_ int, cfg *node.Config) { cfg.Shards = 6 })
	for name, b := range damaged {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		r := kvctl(t, "", "snapshot", "status", p)
		if r.code != 1 || !strings.Contains(r.stderr, want[name]) {
			t.Errorf("snapshot status %s: %v; want an error containing %q", name, r, want[name])
		}
		r = dst.run(t, "", "snapshot", "restore", p)
		if r.code != 1 || !strings.Contains(r.stderr, want[name]) {
			t.Errorf("snapshot restore %s: %v; want an error containing %q", name, r, want[name])
		}
	}
	dst.ok(t, "", "", "scan")

	r = dst.run(t, "", "snapshot", "restore", file)
	if r.code != 0 || !regexp.MustCompile(`^restored 201 keys from .*backup.rkv \(saved from 4 shards\) into a cluster of 6 shards in .+\n$`).MatchString(r.stdout) ||
		!strings.HasSuffix(r.stderr, "restored 201 of 201 keys\n") {
		t.Fatalf("snapshot restore: %v; want 201 keys restored", r)
	}
	for _, i := range []int{0, 77, n - 1} {
		dst.ok(t, "", fmt.Sprintf("v%d\n", i), "get", fmt.Sprintf("snap/%03d", i))
	}
	r = dst.run(t, "", "ttl", "session")
	if d, err := time.ParseDuration(strings.TrimSpace(r.stdout)); r.code != 0 || err != nil || d <= 58*time.Minute || d > time.Hour {
		t.Errorf("ttl of the restored session key: %v; want about 1h", r)
	}
	r = dst.run(t, "", "scan", "--keys-only")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 201 {
		t.Errorf("scan of the restored cluster: %d lines, %v; want 201 keys", strings.Count(r.stdout, "\n"), r.stderr)
	}

	dst.fails(t, "", `ringkv: the target cluster is not empty: it holds key "session" (and maybe more); restore only into an empty cluster, `+
		`or pass --force to write the file's keys over the cluster's (as to finish a restore that failed midway)`,
		"snapshot", "restore", file)
	r = dst.run(t, "", "snapshot", "restore", file, "--force")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "restored 201 keys") {
		t.Fatalf("snapshot restore --force: %v", r)
	}
}

// A save that fails leaves neither FILE nor FILE.part behind. (The fake
// cluster serves no Backup service: every shard's stream fails.)
func TestSnapshotSaveFailureLeavesNoFile(t *testing.T) {
	fc := newFakeCluster(t)
	file := filepath.Join(t.TempDir(), "backup.rkv")
	r := kvctl(t, "", "--endpoints", fc.endpoints(), "snapshot", "save", file)
	if r.code != 1 || !strings.Contains(r.stderr, "snapshot save: shard 0: ") {
		t.Fatalf("snapshot save against a cluster without the Backup service: %v; want a failure of shard 0", r)
	}
	for _, p := range []string{file, file + ".part"} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after a failed save: %v; want it absent", p, err)
		}
	}
}
