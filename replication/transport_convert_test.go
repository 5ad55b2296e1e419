package replication

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

// transportTestHeader returns a header with every field set; n varies it.
func transportTestHeader(n byte) raft.RPCHeader {
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersionMax,
		ID:              []byte{'n', '0' + n},
		Addr:            []byte("10.0.0." + string('0'+n) + ":7001"),
	}
}

func transportTestLogs() []*raft.Log {
	return []*raft.Log{
		{Index: 11, Term: 3, Type: raft.LogNoop, Data: []byte("set a 1"), Extensions: []byte("ext-1"),
			AppendedAt: time.Unix(1_700_000_000, 123_456_789)},
		{Index: 12, Term: 3, Type: raft.LogConfiguration, Data: []byte{0, 1, 2, 255}, Extensions: []byte{9},
			AppendedAt: time.Unix(1_700_000_001, 1)},
		{Index: 13, Term: 4, Type: raft.LogBarrier, Data: []byte("x"), Extensions: []byte("y"),
			AppendedAt: time.Unix(0, 1)},
	}
}

// TestTransportConvertRoundTrip converts every RPC struct, with every field
// set, to its protobuf message and back, directly and through the wire
// encoding, and checks that nothing is lost and every protobuf field is set.
func TestTransportConvertRoundTrip(t *testing.T) {
	const group = 0xfeed_beef_0001
	cases := []struct {
		name string
		in   any // a populated raft struct
		// toProto converts in; fromProto converts a message to a fresh raft
		// struct.
		toProto   func(any) proto.Message
		fromProto func(proto.Message) any
	}{
		{
			name: "AppendEntriesRequest",
			in: &raft.AppendEntriesRequest{
				RPCHeader: transportTestHeader(1), Term: 7, Leader: []byte("10.0.0.1:7001"),
				PrevLogEntry: 10, PrevLogTerm: 3, Entries: transportTestLogs(), LeaderCommitIndex: 9,
			},
			toProto: func(v any) proto.Message {
				return appendEntriesRequestToProto(group, v.(*raft.AppendEntriesRequest))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.AppendEntriesRequest)
				appendEntriesRequestFromProto(m.(*ringkvv1.AppendEntriesRequest), out)
				return out
			},
		},
		{
			name: "AppendEntriesResponse",
			in: &raft.AppendEntriesResponse{
				RPCHeader: transportTestHeader(2), Term: 7, LastLog: 13, Success: true, NoRetryBackoff: true,
			},
			toProto: func(v any) proto.Message { return appendEntriesResponseToProto(v.(*raft.AppendEntriesResponse)) },
			fromProto: func(m proto.Message) any {
				out := new(raft.AppendEntriesResponse)
				appendEntriesResponseFromProto(m.(*ringkvv1.AppendEntriesResponse), out)
				return out
			},
		},
		{
			name: "RequestVoteRequest",
			in: &raft.RequestVoteRequest{
				RPCHeader: transportTestHeader(3), Term: 8, Candidate: []byte("10.0.0.3:7001"),
				LastLogIndex: 13, LastLogTerm: 4, LeadershipTransfer: true,
			},
			toProto: func(v any) proto.Message {
				return requestVoteRequestToProto(group, v.(*raft.RequestVoteRequest))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.RequestVoteRequest)
				requestVoteRequestFromProto(m.(*ringkvv1.RequestVoteRequest), out)
				return out
			},
		},
		{
			name: "RequestVoteResponse",
			in: &raft.RequestVoteResponse{
				RPCHeader: transportTestHeader(4), Term: 8, Peers: []byte("legacy peers"), Granted: true,
			},
			toProto: func(v any) proto.Message { return requestVoteResponseToProto(v.(*raft.RequestVoteResponse)) },
			fromProto: func(m proto.Message) any {
				out := new(raft.RequestVoteResponse)
				requestVoteResponseFromProto(m.(*ringkvv1.RequestVoteResponse), out)
				return out
			},
		},
		{
			name: "RequestPreVoteRequest",
			in: &raft.RequestPreVoteRequest{
				RPCHeader: transportTestHeader(5), Term: 9, LastLogIndex: 14, LastLogTerm: 5,
			},
			toProto: func(v any) proto.Message {
				return requestPreVoteRequestToProto(group, v.(*raft.RequestPreVoteRequest))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.RequestPreVoteRequest)
				requestPreVoteRequestFromProto(m.(*ringkvv1.RequestPreVoteRequest), out)
				return out
			},
		},
		{
			name: "RequestPreVoteResponse",
			in:   &raft.RequestPreVoteResponse{RPCHeader: transportTestHeader(6), Term: 9, Granted: true},
			toProto: func(v any) proto.Message {
				return requestPreVoteResponseToProto(v.(*raft.RequestPreVoteResponse))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.RequestPreVoteResponse)
				requestPreVoteResponseFromProto(m.(*ringkvv1.RequestPreVoteResponse), out)
				return out
			},
		},
		{
			name: "TimeoutNowRequest",
			in:   &raft.TimeoutNowRequest{RPCHeader: transportTestHeader(7)},
			toProto: func(v any) proto.Message {
				return timeoutNowRequestToProto(group, v.(*raft.TimeoutNowRequest))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.TimeoutNowRequest)
				timeoutNowRequestFromProto(m.(*ringkvv1.TimeoutNowRequest), out)
				return out
			},
		},
		{
			name:    "TimeoutNowResponse",
			in:      &raft.TimeoutNowResponse{RPCHeader: transportTestHeader(8)},
			toProto: func(v any) proto.Message { return timeoutNowResponseToProto(v.(*raft.TimeoutNowResponse)) },
			fromProto: func(m proto.Message) any {
				out := new(raft.TimeoutNowResponse)
				timeoutNowResponseFromProto(m.(*ringkvv1.TimeoutNowResponse), out)
				return out
			},
		},
		{
			name: "InstallSnapshotRequest",
			in: &raft.InstallSnapshotRequest{
				RPCHeader: transportTestHeader(9), SnapshotVersion: raft.SnapshotVersionMax, Term: 10,
				Leader: []byte("10.0.0.9:7001"), LastLogIndex: 500, LastLogTerm: 9, Peers: []byte("old peers"),
				Configuration: []byte("encoded configuration"), ConfigurationIndex: 480, Size: 300 << 20,
			},
			toProto: func(v any) proto.Message {
				return installSnapshotRequestToProto(group, v.(*raft.InstallSnapshotRequest))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.InstallSnapshotRequest)
				installSnapshotRequestFromProto(m.(*ringkvv1.InstallSnapshotRequest), out)
				return out
			},
		},
		{
			name: "InstallSnapshotResponse",
			in:   &raft.InstallSnapshotResponse{RPCHeader: transportTestHeader(1), Term: 10, Success: true},
			toProto: func(v any) proto.Message {
				return installSnapshotResponseToProto(v.(*raft.InstallSnapshotResponse))
			},
			fromProto: func(m proto.Message) any {
				out := new(raft.InstallSnapshotResponse)
				installSnapshotResponseFromProto(m.(*ringkvv1.InstallSnapshotResponse), out)
				return out
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// A raft field added in a later version and left at zero here
			// would go unnoticed by the round trip; refuse zero fields.
			transportRequireAllSet(t, reflect.ValueOf(tc.in).Elem(), tc.name)

			msg := tc.toProto(tc.in)
			transportRequireProtoAllSet(t, msg.ProtoReflect(), tc.name)
			if g := msg.ProtoReflect().Descriptor().Fields().ByName("group"); g != nil {
				if got := msg.ProtoReflect().Get(g).Uint(); got != group {
					t.Errorf("group = %#x; want %#x", got, uint64(group))
				}
			}

			if got := tc.fromProto(msg); !reflect.DeepEqual(got, tc.in) {
				t.Errorf("direct round trip:\n got %#v\nwant %#v", got, tc.in)
			}

			wire, err := proto.Marshal(msg)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			decoded := msg.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(wire, decoded); err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			if got := tc.fromProto(decoded); !reflect.DeepEqual(got, tc.in) {
				t.Errorf("wire round trip:\n got %#v\nwant %#v", got, tc.in)
			}
		})
	}
}

// TestTransportConvertZeroValues checks the values that need care: a zero
// AppendedAt (whose UnixNano is undefined), no entries, no header.
func TestTransportConvertZeroValues(t *testing.T) {
	in := &raft.AppendEntriesRequest{Entries: []*raft.Log{{Index: 1, Type: raft.LogCommand}}}
	msg := appendEntriesRequestToProto(1, in)
	if got := msg.Entries[0].AppendedAtUnixNano; got != 0 {
		t.Errorf("zero AppendedAt encoded as %d; want 0", got)
	}
	out := new(raft.AppendEntriesRequest)
	appendEntriesRequestFromProto(msg, out)
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip of zero values:\n got %#v\nwant %#v", out, in)
	}

	// A message without a header (an older or foreign sender) decodes to
	// the zero header.
	msg.Header = nil
	msg.Entries = nil
	out = &raft.AppendEntriesRequest{Entries: transportTestLogs(), RPCHeader: transportTestHeader(1)}
	appendEntriesRequestFromProto(msg, out)
	if !reflect.DeepEqual(out, &raft.AppendEntriesRequest{}) {
		t.Errorf("decoding an empty message into a used struct left %#v", out)
	}
}

func TestTransportIsHeartbeat(t *testing.T) {
	addr := []byte("10.0.0.1:7001")
	cases := []struct {
		name string
		req  raft.AppendEntriesRequest
		want bool
	}{
		{"heartbeat", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}, Term: 3}, true},
		{"legacy leader field", raft.AppendEntriesRequest{Leader: addr, Term: 3}, true},
		{"no term", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}}, false},
		{"no leader", raft.AppendEntriesRequest{Term: 3}, false},
		{"prev entry", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}, Term: 3, PrevLogEntry: 1}, false},
		{"prev term", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}, Term: 3, PrevLogTerm: 1}, false},
		{"commit", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}, Term: 3, LeaderCommitIndex: 1}, false},
		{"entries", raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: addr}, Term: 3, Entries: []*raft.Log{{}}}, false},
	}
	for _, tc := range cases {
		if got := isHeartbeat(&tc.req); got != tc.want {
			t.Errorf("isHeartbeat(%s) = %v; want %v", tc.name, got, tc.want)
		}
	}
}

// transportRequireAllSet fails t for every zero field in v, recursively.
func transportRequireAllSet(t *testing.T, v reflect.Value, path string) {
	t.Helper()
	if v.Type() == reflect.TypeOf(time.Time{}) {
		if v.Interface().(time.Time).IsZero() {
			t.Errorf("%s is zero; populate it", path)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			transportRequireAllSet(t, v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Pointer:
		if v.IsNil() {
			t.Errorf("%s is nil; populate it", path)
			return
		}
		transportRequireAllSet(t, v.Elem(), path)
	case reflect.Slice:
		if v.Len() == 0 {
			t.Errorf("%s is empty; populate it", path)
		}
		if v.Type().Elem().Kind() != reflect.Uint8 {
			for i := range v.Len() {
				transportRequireAllSet(t, v.Index(i), path+"["+string(rune('0'+i))+"]")
			}
		}
	default:
		if v.IsZero() {
			t.Errorf("%s is zero; populate it", path)
		}
	}
}

// transportRequireProtoAllSet fails t for every unset field of m, recursively.
func transportRequireProtoAllSet(t *testing.T, m protoreflect.Message, path string) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		name := path + "." + string(fd.Name())
		if !m.Has(fd) {
			if fd.Name() == "error" { // set only for a failed AppendEntries
				continue
			}
			t.Errorf("%s is not set by the conversion", name)
			continue
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := m.Get(fd).List()
			for j := range l.Len() {
				transportRequireProtoAllSet(t, l.Get(j).Message(), name)
			}
		case fd.Message() != nil:
			transportRequireProtoAllSet(t, m.Get(fd).Message(), name)
		}
	}
}
