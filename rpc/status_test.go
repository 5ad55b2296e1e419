package rpc

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/ringkv/ringkv/replication"
	"github.com/ringkv/ringkv/router"
	"github.com/ringkv/ringkv/shard"
)

func TestToStatusNil(t *testing.T) {
	if err := toStatus(nil); err != nil {
		t.Errorf("toStatus(nil) = %v; want nil", err)
	}
}

// Every error the layers below return maps to its documented code, bare
// and wrapped one or two levels deep with %w.
func TestToStatus(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"router.ErrNotFound", router.ErrNotFound, codes.NotFound},
		{"shard.ErrStaleRequest", shard.ErrStaleRequest, codes.FailedPrecondition},
		{"replication.ErrNotLeader", replication.ErrNotLeader, codes.Unavailable},
		{"*replication.NotLeaderError", &replication.NotLeaderError{Group: 3, LeaderID: "n2", LeaderAddr: "a:1"}, codes.Unavailable},
		{"*replication.NotLeaderError without hint", &replication.NotLeaderError{Group: 3}, codes.Unavailable},
		{"replication.ErrOutcomeUnknown", replication.ErrOutcomeUnknown, codes.Unavailable},
		{"replication.ErrShutdown", replication.ErrShutdown, codes.Unavailable},
		{"router.ErrNoLeader", router.ErrNoLeader, codes.Unavailable},
		{"router.ErrNotReady", router.ErrNotReady, codes.Unavailable},
		{"router.ErrUnreachable", router.ErrUnreachable, codes.Unavailable},
		{"context.DeadlineExceeded", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"context.Canceled", context.Canceled, codes.Canceled},
		{"remote InvalidArgument", &remoteError{code: codes.InvalidArgument, msg: "key is empty (from a:1)"}, codes.InvalidArgument},
		{"remote ResourceExhausted", &remoteError{code: codes.ResourceExhausted, msg: "too big (from a:1)"}, codes.ResourceExhausted},
		{"remote Internal", &remoteError{code: codes.Internal, msg: "boom (from a:1)"}, codes.Internal},
		{"unknown error", errors.New("disk on fire"), codes.Internal},
		{"shard.ErrBadCommand", shard.ErrBadCommand, codes.InvalidArgument},
		// Combinations the router and replication produce.
		{"unknown outcome after deadline",
			fmt.Errorf("group 1: propose: %w: %w", replication.ErrOutcomeUnknown, context.DeadlineExceeded), codes.Unavailable},
		{"no leader after not-leader",
			fmt.Errorf("shard 2: %w: %w", router.ErrNoLeader, &replication.NotLeaderError{LeaderID: "n1"}), codes.Unavailable},
		{"no leader after unreachable",
			fmt.Errorf("shard 2: %w: %w", router.ErrNoLeader, fmt.Errorf("%w: a:1: refused", router.ErrUnreachable)), codes.Unavailable},
	}
	for _, tt := range tests {
		variants := []struct {
			how string
			err error
		}{
			{"bare", tt.err},
			{"wrapped once", fmt.Errorf("shard 7: %w", tt.err)},
			{"wrapped twice", fmt.Errorf("shard 7 via n2: %w", fmt.Errorf("forward: %w", tt.err))},
		}
		for _, v := range variants {
			got := toStatus(v.err)
			st, ok := status.FromError(got)
			if !ok {
				t.Errorf("toStatus(%s %s) = %v; not a status error", v.how, tt.name, got)
				continue
			}
			if st.Code() != tt.want {
				t.Errorf("toStatus(%s %s) code = %v; want %v", v.how, tt.name, st.Code(), tt.want)
			}
			if st.Message() != v.err.Error() {
				t.Errorf("toStatus(%s %s) message = %q; want %q", v.how, tt.name, st.Message(), v.err.Error())
			}
		}
	}
}

// A bare status error, such as an input validation error, passes through
// unchanged.
func TestToStatusPassesStatusThrough(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.Unavailable, codes.PermissionDenied} {
		in := status.Error(code, "key is 5000 bytes; the limit is 4096 bytes")
		got := toStatus(in)
		if got != in {
			t.Errorf("toStatus(status %v) = %v; want the same error", code, got)
		}
		if c := status.Code(got); c != code {
			t.Errorf("toStatus(status %v) code = %v", code, c)
		}
	}
}

func TestFromRemote(t *testing.T) {
	const peer = "10.0.0.2:7000"
	tests := []struct {
		name   string
		err    error
		leader string
		check  func(t *testing.T, got error)
	}{
		{"NotFound", status.Error(codes.NotFound, "shard 3: key not found"), "n2",
			func(t *testing.T, got error) {
				if !errors.Is(got, router.ErrNotFound) {
					t.Errorf("got %v; want router.ErrNotFound", got)
				}
			}},
		{"Unavailable with leader header", status.Error(codes.Unavailable, "not the leader"), "n3",
			func(t *testing.T, got error) {
				var nl *replication.NotLeaderError
				if !errors.As(got, &nl) || nl.LeaderID != "n3" {
					t.Errorf("got %#v; want *NotLeaderError{LeaderID: %q}", got, "n3")
				}
				if !errors.Is(got, replication.ErrNotLeader) {
					t.Errorf("got %v; want errors.Is ErrNotLeader", got)
				}
			}},
		{"Unavailable without leader header", status.Error(codes.Unavailable, "no leader"), "",
			func(t *testing.T, got error) {
				var nl *replication.NotLeaderError
				if !errors.As(got, &nl) || nl.LeaderID != "" {
					t.Errorf("got %#v; want *NotLeaderError{LeaderID: \"\"}", got)
				}
			}},
		{"DeadlineExceeded", status.Error(codes.DeadlineExceeded, "too slow"), "",
			func(t *testing.T, got error) {
				if !errors.Is(got, context.DeadlineExceeded) {
					t.Errorf("got %v; want context.DeadlineExceeded", got)
				}
				if !strings.Contains(got.Error(), peer) {
					t.Errorf("got %q; want it to name %q", got, peer)
				}
			}},
		{"Canceled", status.Error(codes.Canceled, "gone"), "",
			func(t *testing.T, got error) {
				if !errors.Is(got, context.Canceled) {
					t.Errorf("got %v; want context.Canceled", got)
				}
			}},
		{"InvalidArgument", status.Error(codes.InvalidArgument, "key is empty"), "",
			func(t *testing.T, got error) {
				var re *remoteError
				if !errors.As(got, &re) || re.code != codes.InvalidArgument {
					t.Fatalf("got %#v; want *remoteError with InvalidArgument", got)
				}
				if !strings.Contains(re.msg, "key is empty") || !strings.Contains(re.msg, peer) {
					t.Errorf("message %q; want the remote message and the peer %q", re.msg, peer)
				}
			}},
		{"FailedPrecondition", status.Error(codes.FailedPrecondition, "stale request"), "",
			func(t *testing.T, got error) {
				var re *remoteError
				if !errors.As(got, &re) || re.code != codes.FailedPrecondition {
					t.Errorf("got %#v; want *remoteError with FailedPrecondition", got)
				}
			}},
		{"Internal", status.Error(codes.Internal, "boom"), "",
			func(t *testing.T, got error) {
				var re *remoteError
				if !errors.As(got, &re) || re.code != codes.Internal {
					t.Errorf("got %#v; want *remoteError with Internal", got)
				}
			}},
		{"not a status", errors.New("connection reset"), "",
			func(t *testing.T, got error) {
				if !errors.Is(got, router.ErrUnreachable) {
					t.Errorf("got %v; want router.ErrUnreachable", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, fromRemote(peer, tt.leader, tt.err))
		})
	}
}

// A peer's answer, mapped back by fromRemote and wrapped by the router,
// leaves this node with the code the peer chose.
func TestFromRemoteToStatusRoundTrip(t *testing.T) {
	for _, code := range []codes.Code{
		codes.NotFound, codes.Unavailable, codes.DeadlineExceeded, codes.Canceled,
		codes.InvalidArgument, codes.FailedPrecondition, codes.ResourceExhausted, codes.Internal,
	} {
		remote := fromRemote("peer:1", "n2", status.Error(code, "remote says so"))
		wrapped := fmt.Errorf("shard 4 via n2: %w", remote)
		if got := status.Code(toStatus(wrapped)); got != code {
			t.Errorf("peer code %v came back as %v", code, got)
		}
	}
}

func TestLeaderHint(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("x"), ""},
		{replication.ErrNotLeader, ""},
		{&replication.NotLeaderError{LeaderID: "n2"}, "n2"},
		{fmt.Errorf("shard 1: %w", fmt.Errorf("read: %w", &replication.NotLeaderError{LeaderID: "n5"})), "n5"},
		{fmt.Errorf("shard 1: %w: %w", router.ErrNoLeader, &replication.NotLeaderError{LeaderID: "n4"}), "n4"},
	}
	for _, tt := range tests {
		if got := leaderHint(tt.err); got != tt.want {
			t.Errorf("leaderHint(%v) = %q; want %q", tt.err, got, tt.want)
		}
	}
}
