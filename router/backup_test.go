package router

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/ringkv/ringkv/shard"
)

// sendImage cuts chunks at imageChunkBytes (a large record goes alone),
// sends every live key once in order with its remaining TTL, leaves out
// keys whose TTL ran out by the leader's clock, and ends with the counts.
func TestSendImageChunksAndTTLs(t *testing.T) {
	sm := shard.NewStateMachine(shard.Config{})
	now := time.Unix(1_700_000_000, 0).UnixNano()
	index := uint64(0)
	apply := func(c shard.Command) {
		t.Helper()
		index++
		c.ProposedAt = now - int64(time.Minute)
		if r := sm.Apply(index, c.Encode()); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	want := map[string]int{} // key -> value size
	for i := range 3000 {
		k := fmt.Sprintf("k%05d", i)
		size := 100
		if i == 1500 {
			size = 1 << 20 // larger than a chunk
		}
		apply(shard.Command{Op: shard.OpPut, Key: []byte(k), Value: bytes.Repeat([]byte("v"), size)})
		want[k] = size
	}
	// Proposed a minute before now: 30 s is past by now, 2 min is not.
	apply(shard.Command{Op: shard.OpTxn, Then: []shard.TxnOp{
		{Kind: shard.TxnPut, Key: []byte("ttl/dead"), Value: []byte("x"), TTL: 30 * time.Second},
		{Kind: shard.TxnPut, Key: []byte("ttl/live"), Value: []byte("y"), TTL: 2 * time.Minute}}})
	want["ttl/live"] = 1

	snap, err := sm.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	info := &ShardImageInfo{Shard: 1, ShardCount: 2, Index: snap.Index()}
	var chunks int
	var last string
	var count, total uint64
	err = sendImage(snap, info, now, func(c ImageChunk) error {
		if (chunks == 0) != (c.Info != nil) {
			t.Fatalf("chunk %d: info %v; want it on the first chunk only", chunks, c.Info)
		}
		chunks++
		size := 0
		for _, r := range c.Records {
			k := string(r.Key)
			if k <= last {
				t.Fatalf("key %q after %q", k, last)
			}
			last = k
			n, ok := want[k]
			if !ok || len(r.Value) != n {
				t.Fatalf("image holds %q (%d bytes); want %d bytes (known %v)", k, len(r.Value), n, ok)
			}
			delete(want, k)
			if k == "ttl/live" && r.TTL != time.Minute {
				t.Fatalf("ttl/live has TTL %v; want 1m (2m written 1m before the image)", r.TTL)
			} else if k != "ttl/live" && r.TTL != 0 {
				t.Fatalf("%q has TTL %v; want none", k, r.TTL)
			}
			size += len(r.Key) + len(r.Value) + imageRecordOverhead
			count++
			total += uint64(len(r.Key) + len(r.Value))
		}
		if size > imageChunkBytes && len(c.Records) > 1 {
			t.Fatalf("chunk %d: %d records of %d bytes; want at most %d bytes or one record", chunks, len(c.Records), size, imageChunkBytes)
		}
		if c.End && (c.Count != count || c.Bytes != total) {
			t.Fatalf("end counts %d keys %d bytes; sent %d keys %d bytes", c.Count, c.Bytes, count, total)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 0 {
		t.Fatalf("%d keys not sent", len(want))
	}
	if chunks < 3 { // before the large record, it alone, after it
		t.Fatalf("%d chunks; want the image cut into several", chunks)
	}
}
