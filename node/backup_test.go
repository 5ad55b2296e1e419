package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/backup"
	"github.com/ringkv/ringkv/client"
	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
	"github.com/ringkv/ringkv/shard"
)

// backupState is what a cluster should hold: values by key, and the keys
// written with a TTL.
type backupState struct {
	values map[string]string
	ttl    map[string]time.Duration
}

// fillForBackup writes n keys through cl in MultiPut batches, overwrites
// every 10th, deletes every 20th, and gives every 50th a TTL of an hour; it
// also writes keys with a 1 ms TTL, which must not survive. It returns what
// the cluster must hold.
func fillForBackup(t *testing.T, ctx context.Context, cl *client.Client, n int) backupState {
	t.Helper()
	st := backupState{values: map[string]string{}, ttl: map[string]time.Duration{}}
	key := func(i int) string { return fmt.Sprintf("bk/%05d", i) }
	// A shard's part of a MultiPut is one Txn of at most shard.MaxTxnOps
	// keys: 250 keys spread over the shards stay well below it.
	for start := 0; start < n; start += 250 {
		var keys, values [][]byte
		for i := start; i < min(n, start+250); i++ {
			keys = append(keys, []byte(key(i)))
			v := fmt.Sprintf("value-%d-%s", i, bytes.Repeat([]byte{'x'}, i%64))
			values = append(values, []byte(v))
			st.values[key(i)] = v
		}
		if _, err := cl.MultiPut(ctx, keys, values); err != nil {
			t.Fatalf("MultiPut from %d: %v", start, err)
		}
	}
	for i := 0; i < n; i += 10 {
		v := fmt.Sprintf("overwritten-%d", i)
		if _, err := cl.Put(ctx, []byte(key(i)), []byte(v)); err != nil {
			t.Fatal(err)
		}
		st.values[key(i)] = v
	}
	for i := 5; i < n; i += 20 {
		if _, _, err := cl.Delete(ctx, []byte(key(i))); err != nil {
			t.Fatal(err)
		}
		delete(st.values, key(i))
	}
	for i := 3; i < n; i += 50 {
		v := fmt.Sprintf("ttl-%d", i)
		if _, err := cl.Put(ctx, []byte(key(i)), []byte(v), client.WithTTL(time.Hour)); err != nil {
			t.Fatal(err)
		}
		st.values[key(i)], st.ttl[key(i)] = v, time.Hour
	}
	for i := range 5 {
		if _, err := cl.Put(ctx, fmt.Appendf(nil, "bk/short/%d", i), []byte("gone"), client.WithTTL(time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// checkRestored compares every key of the cluster with want: the same keys,
// the same values, a TTL on (and only on) the keys that had one, no longer
// than it was.
func checkRestored(t *testing.T, ctx context.Context, cl *client.Client, want backupState) {
	t.Helper()
	seen := 0
	for kv, err := range cl.Scan(ctx, nil, client.ScanOptions{PageSize: 5000}) {
		if err != nil {
			t.Fatalf("scan after %d keys: %v", seen, err)
		}
		k := string(kv.Key)
		w, ok := want.values[k]
		if !ok {
			t.Fatalf("restored cluster holds %q = %q; the source did not (deleted or expired)", k, kv.Data)
		}
		if string(kv.Data) != w {
			t.Fatalf("restored %q = %q; want %q", k, kv.Data, w)
		}
		ttl, hasTTL := want.ttl[k]
		if hasTTL != (kv.TTL > 0) || kv.TTL > ttl {
			t.Fatalf("restored %q has TTL %v; want %v", k, kv.TTL, ttl)
		}
		seen++
	}
	if seen != len(want.values) {
		t.Fatalf("restored cluster holds %d keys; want %d", seen, len(want.values))
	}
}

func isEmpty(t *testing.T, ctx context.Context, cl *client.Client) bool {
	t.Helper()
	kvs, _, err := cl.ScanPage(ctx, nil, nil, client.ScanOptions{PageSize: 1, KeysOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	return len(kvs) == 0
}

// The acceptance test of backups: a cluster of 10,000 keys (some
// overwritten, some deleted, some with a TTL) is saved to a file and
// restored into a fresh cluster with another shard count; the new cluster
// holds exactly the same keys and values.
func TestLongBackupRestoreTenThousandKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 keys, two clusters")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	src := startCluster(t, clusterOpts{shards: 8})
	scl := src.client(t)
	want := fillForBackup(t, ctx, scl, 10_000)

	path := filepath.Join(t.TempDir(), "backup.rkv")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var shardsSaved int
	sum, err := scl.SaveSnapshot(ctx, f, func(client.SaveProgress) { shardsSaved++ })
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}
	if sum.Records != uint64(len(want.values)) || sum.ShardCount != 8 || shardsSaved != 8 {
		t.Fatalf("saved %d keys of %d shards (%d progress calls); want %d keys of 8", sum.Records, sum.ShardCount, shardsSaved, len(want.values))
	}
	src.stopAll() // the restore needs nothing of the source

	dst := startCluster(t, clusterOpts{shards: 5})
	dcl := dst.client(t)
	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last client.RestoreProgress
	if _, err := dcl.RestoreSnapshot(ctx, f, client.RestoreOptions{Progress: func(p client.RestoreProgress) { last = p }}); err != nil {
		t.Fatalf("RestoreSnapshot: %v", err)
	}
	if last.Written != sum.Records || last.Total != sum.Records {
		t.Fatalf("last progress %+v; want %d of %d written", last, sum.Records, sum.Records)
	}
	checkRestored(t, ctx, dcl, want)
}

// A damaged, truncated or foreign file is refused before anything is
// written; a restore into a cluster that holds keys is refused unless
// forced; a forced restore run again (as after a failure) ends with the
// same keys.
func TestBackupRefusesBadFilesAndNonEmptyCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := startCluster(t, clusterOpts{nodes: 1, shards: 4})
	scl := src.client(t)
	want := fillForBackup(t, ctx, scl, 300)
	var file bytes.Buffer
	if _, err := scl.SaveSnapshot(ctx, &file, nil); err != nil {
		t.Fatalf("SaveSnapshot: %v", err)
	}

	// Keys whose TTL ran out before the save are not in the file.
	if _, err := backup.Read(bytes.NewReader(file.Bytes()), func(_ backup.ShardBegin, recs []backup.Record) error {
		for _, r := range recs {
			if bytes.HasPrefix(r.Key, []byte("bk/short/")) {
				return fmt.Errorf("the file holds %q, whose 1 ms TTL ran out before the save", r.Key)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	dst := startCluster(t, clusterOpts{nodes: 1, shards: 3})
	dcl := dst.client(t)
	flipped := bytes.Clone(file.Bytes())
	flipped[len(flipped)/2] ^= 0x40
	bad := []struct {
		name string
		file []byte
		want error
	}{
		{"a flipped byte", flipped, backup.ErrCorrupt},
		{"truncated", file.Bytes()[:file.Len()-100], backup.ErrCorrupt},
		{"a foreign file", []byte("this is not a backup, but it is long enough"), backup.ErrNotBackup},
	}
	for _, b := range bad {
		_, err := dcl.RestoreSnapshot(ctx, bytes.NewReader(b.file), client.RestoreOptions{})
		if !errors.Is(err, b.want) {
			t.Fatalf("restore of %s: %v; want %v", b.name, err, b.want)
		}
		t.Logf("restore of %s: %v", b.name, err)
		if !isEmpty(t, ctx, dcl) {
			t.Fatalf("restore of %s wrote keys", b.name)
		}
	}

	if _, err := dcl.Put(ctx, []byte("already-here"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	_, err := dcl.RestoreSnapshot(ctx, bytes.NewReader(file.Bytes()), client.RestoreOptions{})
	if !errors.Is(err, client.ErrNotEmpty) {
		t.Fatalf("restore into a cluster with a key: %v; want ErrNotEmpty", err)
	}
	if got, err := dcl.Get(ctx, []byte("bk/00001")); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("refused restore wrote bk/00001 = %q, %v", got.Data, err)
	}
	// Forced, twice: a re-run after a failure is harmless.
	for range 2 {
		if _, err := dcl.RestoreSnapshot(ctx, bytes.NewReader(file.Bytes()), client.RestoreOptions{Force: true}); err != nil {
			t.Fatalf("forced restore: %v", err)
		}
	}
	want.values["already-here"] = "1"
	checkRestored(t, ctx, dcl, want)
}

// Any node serves SnapshotShard: a node that does not lead the shard
// forwards it to the leader, and every node's stream is the same image of
// an idle shard. A shard outside the cluster is InvalidArgument.
func TestSnapshotShardThroughAnyNode(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 2})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 200 {
		if _, err := cl.Put(ctx, fmt.Appendf(nil, "k%03d", i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(node int, sid uint32) (string, []string, error) {
		stream, err := ringkvv1.NewBackupClient(c.conns[node]).SnapshotShard(ctx, &ringkvv1.SnapshotShardRequest{Shard: sid})
		if err != nil {
			return "", nil, err
		}
		var leader string
		var keys []string
		for {
			resp, err := stream.Recv()
			if err == io.EOF {
				return leader, keys, nil
			}
			if err != nil {
				return leader, keys, err
			}
			if h := resp.GetHeader(); h != nil {
				leader = h.GetLeader()
			}
			for _, r := range resp.GetRecords() {
				keys = append(keys, string(r.GetKey())+"="+string(r.GetValue()))
			}
		}
	}
	for sid := range uint32(2) {
		leaderIdx := c.leaderOf(shard.ID(sid))
		var first []string
		for node := range c.nodes {
			leader, keys, err := read(node, sid)
			if err != nil {
				t.Fatalf("shard %d through node %d: %v", sid, node+1, err)
			}
			if want := c.peers[leaderIdx].ID; leader != want {
				// Unless leadership moved meanwhile, the leader took it.
				if now := c.leaderOf(shard.ID(sid)); now < 0 || c.peers[now].ID != leader {
					t.Fatalf("shard %d through node %d: image taken on %s; want the leader %s", sid, node+1, leader, want)
				}
			}
			if node == 0 {
				first = keys
				continue
			}
			if fmt.Sprint(keys) != fmt.Sprint(first) {
				t.Fatalf("shard %d through node %d: %d keys, differ from node 1's %d", sid, node+1, len(keys), len(first))
			}
		}
		if len(first) == 0 {
			t.Fatalf("shard %d: no keys", sid)
		}
	}
	if _, _, err := read(0, 2); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("SnapshotShard of shard 2 of 2: %v; want InvalidArgument", err)
	}
}

// Each shard's image is one instant of the shard: two keys of one shard
// that a Txn always sets together are equal in the backup, however the
// writes interleave with the save.
func TestBackupImageIsPointInTimeUnderWrites(t *testing.T) {
	c := startCluster(t, clusterOpts{shards: 2})
	cl := c.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Padding keys between a and z make the image span several chunks.
	pad := bytes.Repeat([]byte("p"), 4<<10)
	for i := range 200 {
		if _, err := cl.Put(ctx, fmt.Appendf(nil, "{pair}m%03d", i), pad); err != nil {
			t.Fatal(err)
		}
	}
	wctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var writes int
	go func() {
		defer wg.Done()
		for n := 1; wctx.Err() == nil; n++ {
			v := fmt.Appendf(nil, "%d", n)
			_, err := cl.Txn(wctx, client.Txn{Then: []client.Op{
				client.OpPut([]byte("{pair}a"), v, 0), client.OpPut([]byte("{pair}z"), v, 0)}})
			if err == nil {
				writes = n
			}
		}
	}()
	waitFor(t, 10*time.Second, "the first pair write", func() bool {
		_, err := cl.Get(ctx, []byte("{pair}z"))
		return err == nil
	})
	var saves int
	for range 5 {
		var file bytes.Buffer
		if _, err := cl.SaveSnapshot(ctx, &file, nil); err != nil {
			stop()
			wg.Wait()
			t.Fatalf("SaveSnapshot: %v", err)
		}
		vals := map[string]string{}
		if _, err := backup.Read(bytes.NewReader(file.Bytes()), func(_ backup.ShardBegin, recs []backup.Record) error {
			for _, r := range recs {
				if k := string(r.Key); k == "{pair}a" || k == "{pair}z" {
					vals[k] = string(r.Value)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if vals["{pair}a"] == "" || vals["{pair}a"] != vals["{pair}z"] {
			stop()
			wg.Wait()
			t.Fatalf("backup holds a=%q z=%q; a Txn always writes them equal", vals["{pair}a"], vals["{pair}z"])
		}
		saves++
	}
	stop()
	wg.Wait()
	t.Logf("%d saves consistent across %d pair writes", saves, writes)
}
