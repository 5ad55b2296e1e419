package replication

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"golang.org/x/time/rate"
)

// TestMuxSnapshotRate checks the limiter MuxConfig.SnapshotRate selects:
// one for the whole Mux, whose burst is a chunk.
func TestMuxSnapshotRate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       MuxConfig
		limit     rate.Limit
		burst     int
		unlimited bool
	}{
		{name: "default", cfg: MuxConfig{}, limit: DefaultSnapshotRate, burst: DefaultSnapshotChunkSize},
		{name: "set", cfg: MuxConfig{SnapshotRate: 1000, SnapshotChunkSize: 4096}, limit: 1000, burst: 4096},
		{name: "unlimited", cfg: MuxConfig{SnapshotRate: -1}, unlimited: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.LocalAddr = "127.0.0.1:1"
			if err := tc.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			m := NewMux(tc.cfg)
			defer m.Close()
			if tc.unlimited {
				if m.snapshotPacer != nil {
					t.Fatalf("pacer %v; want none", m.snapshotPacer)
				}
				return
			}
			l, ok := m.snapshotPacer.(*rate.Limiter)
			if !ok {
				t.Fatalf("pacer %T; want a *rate.Limiter", m.snapshotPacer)
			}
			if l.Limit() != tc.limit || l.Burst() != tc.burst {
				t.Fatalf("limiter of %v B/s, burst %d; want %v B/s, burst %d", l.Limit(), l.Burst(), tc.limit, tc.burst)
			}
		})
	}
}

// blockingPacer never lets a byte through: it waits for the end of the
// context.
type blockingPacer struct{}

func (blockingPacer) WaitN(ctx context.Context, _ int) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestTransportInstallSnapshotPacingEndsWithDeadline checks that a transfer
// waiting for the rate limit ends with its deadline, whether the limiter
// waits for it or, as rate.Limiter does, refuses at once a wait that would
// outlast it.
func TestTransportInstallSnapshotPacingEndsWithDeadline(t *testing.T) {
	const chunk = 1 << 10
	for _, tc := range []struct {
		name     string
		pacer    snapshotPacer
		wantSent uint64
	}{
		{name: "waits", pacer: blockingPacer{}, wantSent: 0},
		// 1 B/s: the first chunk passes on the burst, the second would take
		// 17 minutes.
		{name: "refuses", pacer: rate.NewLimiter(1, chunk), wantSent: chunk},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTransportTestNode(t, MuxConfig{RPCTimeout: 300 * time.Millisecond, SnapshotChunkSize: chunk, snapshotPacer: tc.pacer})
			b := newTransportTestNode(t, MuxConfig{})
			ta := a.transport(t, 1)
			tb := b.transport(t, 1)
			transportServeRPCs(t, tb, func(rpc raft.RPC) {
				_, err := io.Copy(io.Discard, rpc.Reader)
				rpc.Respond(&raft.InstallSnapshotResponse{Term: 1, Success: err == nil}, err)
			})
			const size = 4 * chunk
			err := transportWithin(t, transportTestWait, "a paced InstallSnapshot", func() error {
				return ta.InstallSnapshot("b", raft.ServerAddress(b.addr), &raft.InstallSnapshotRequest{Term: 1, Size: size},
					new(raft.InstallSnapshotResponse), transportSnapshotData(size))
			})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("InstallSnapshot = %v; want it to wrap context.DeadlineExceeded", err)
			}
			if got := a.mux.SnapshotBytesSent(1); got != tc.wantSent {
				t.Fatalf("SnapshotBytesSent = %d; want %d", got, tc.wantSent)
			}
		})
	}
}
