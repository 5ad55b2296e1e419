// This file converts between hashicorp/raft's RPC structs and the
// RaftTransport protobuf messages, field by field.
//
// Both directions alias byte slices instead of copying them: a raft struct
// handed to the transport is only read while it is sent, and a protobuf
// message decoded by gRPC owns fresh slices that Raft may keep. Each
// ...ToProto allocates its message and header together, and the log entries
// of an AppendEntries in one slab, so the write path pays a fixed number of
// allocations per request, not one per entry.

package replication

import (
	"time"

	"github.com/hashicorp/raft"

	ringkvv1 "github.com/ringkv/ringkv/proto/ringkv/v1"
)

func headerToProto(in *raft.RPCHeader, out *ringkvv1.RaftHeader) {
	out.ProtocolVersion = uint64(in.ProtocolVersion)
	out.Id = in.ID
	out.Addr = in.Addr
}

func headerFromProto(in *ringkvv1.RaftHeader) raft.RPCHeader {
	if in == nil {
		return raft.RPCHeader{}
	}
	return raft.RPCHeader{
		ProtocolVersion: raft.ProtocolVersion(in.ProtocolVersion),
		ID:              in.Id,
		Addr:            in.Addr,
	}
}

// timeToUnixNano maps the zero time to 0 (its UnixNano is undefined) and any
// other time to its Unix nanoseconds; the monotonic reading is dropped.
func timeToUnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func timeFromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// appendEntriesRequestMsg holds a request and its header in one allocation.
type appendEntriesRequestMsg struct {
	req ringkvv1.AppendEntriesRequest
	hdr ringkvv1.RaftHeader
}

func appendEntriesRequestToProto(group uint64, in *raft.AppendEntriesRequest) *ringkvv1.AppendEntriesRequest {
	m := new(appendEntriesRequestMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.req
	out.Group = group
	out.Header = &m.hdr
	out.Term = in.Term
	out.Leader = in.Leader
	out.PrevLogEntry = in.PrevLogEntry
	out.PrevLogTerm = in.PrevLogTerm
	if n := len(in.Entries); n > 0 {
		logs := make([]ringkvv1.RaftLog, n)
		out.Entries = make([]*ringkvv1.RaftLog, n)
		for i, e := range in.Entries {
			l := &logs[i]
			l.Index = e.Index
			l.Term = e.Term
			l.Type = uint32(e.Type)
			l.Data = e.Data
			l.Extensions = e.Extensions
			l.AppendedAtUnixNano = timeToUnixNano(e.AppendedAt)
			out.Entries[i] = l
		}
	}
	out.LeaderCommitIndex = in.LeaderCommitIndex
	return out
}

// appendEntriesRequestFromProto fills out from in; out's entries alias in's
// byte slices.
func appendEntriesRequestFromProto(in *ringkvv1.AppendEntriesRequest, out *raft.AppendEntriesRequest) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.Leader = in.Leader
	out.PrevLogEntry = in.PrevLogEntry
	out.PrevLogTerm = in.PrevLogTerm
	out.Entries = nil
	if n := len(in.Entries); n > 0 {
		logs := make([]raft.Log, n)
		out.Entries = make([]*raft.Log, n)
		for i, e := range in.Entries {
			l := &logs[i]
			l.Index = e.Index
			l.Term = e.Term
			l.Type = raft.LogType(e.Type)
			l.Data = e.Data
			l.Extensions = e.Extensions
			l.AppendedAt = timeFromUnixNano(e.AppendedAtUnixNano)
			out.Entries[i] = l
		}
	}
	out.LeaderCommitIndex = in.LeaderCommitIndex
}

// isHeartbeat is raft.NetworkTransport's test for a heartbeat, which Raft
// handles on its fast path. (After protobuf decoding an empty address is
// nil, so len is the same test as NetworkTransport's != nil.)
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	leaderAddr := req.RPCHeader.Addr
	if len(leaderAddr) == 0 {
		leaderAddr = req.Leader
	}
	return req.Term != 0 && len(leaderAddr) != 0 &&
		req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

type appendEntriesResponseMsg struct {
	resp ringkvv1.AppendEntriesResponse
	hdr  ringkvv1.RaftHeader
}

func appendEntriesResponseToProto(in *raft.AppendEntriesResponse) *ringkvv1.AppendEntriesResponse {
	m := new(appendEntriesResponseMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.resp
	out.Header = &m.hdr
	out.Term = in.Term
	out.LastLog = in.LastLog
	out.Success = in.Success
	out.NoRetryBackoff = in.NoRetryBackoff
	return out
}

// appendEntriesResponseFromProto fills out from in; in.Error is the caller's
// to report.
func appendEntriesResponseFromProto(in *ringkvv1.AppendEntriesResponse, out *raft.AppendEntriesResponse) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.LastLog = in.LastLog
	out.Success = in.Success
	out.NoRetryBackoff = in.NoRetryBackoff
}

type requestVoteRequestMsg struct {
	req ringkvv1.RequestVoteRequest
	hdr ringkvv1.RaftHeader
}

func requestVoteRequestToProto(group uint64, in *raft.RequestVoteRequest) *ringkvv1.RequestVoteRequest {
	m := new(requestVoteRequestMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.req
	out.Group = group
	out.Header = &m.hdr
	out.Term = in.Term
	out.Candidate = in.Candidate
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
	out.LeadershipTransfer = in.LeadershipTransfer
	return out
}

func requestVoteRequestFromProto(in *ringkvv1.RequestVoteRequest, out *raft.RequestVoteRequest) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.Candidate = in.Candidate
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
	out.LeadershipTransfer = in.LeadershipTransfer
}

type requestVoteResponseMsg struct {
	resp ringkvv1.RequestVoteResponse
	hdr  ringkvv1.RaftHeader
}

func requestVoteResponseToProto(in *raft.RequestVoteResponse) *ringkvv1.RequestVoteResponse {
	m := new(requestVoteResponseMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.resp
	out.Header = &m.hdr
	out.Term = in.Term
	out.Peers = in.Peers
	out.Granted = in.Granted
	return out
}

func requestVoteResponseFromProto(in *ringkvv1.RequestVoteResponse, out *raft.RequestVoteResponse) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.Peers = in.Peers
	out.Granted = in.Granted
}

type requestPreVoteRequestMsg struct {
	req ringkvv1.RequestPreVoteRequest
	hdr ringkvv1.RaftHeader
}

func requestPreVoteRequestToProto(group uint64, in *raft.RequestPreVoteRequest) *ringkvv1.RequestPreVoteRequest {
	m := new(requestPreVoteRequestMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.req
	out.Group = group
	out.Header = &m.hdr
	out.Term = in.Term
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
	return out
}

func requestPreVoteRequestFromProto(in *ringkvv1.RequestPreVoteRequest, out *raft.RequestPreVoteRequest) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
}

type requestPreVoteResponseMsg struct {
	resp ringkvv1.RequestPreVoteResponse
	hdr  ringkvv1.RaftHeader
}

func requestPreVoteResponseToProto(in *raft.RequestPreVoteResponse) *ringkvv1.RequestPreVoteResponse {
	m := new(requestPreVoteResponseMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.resp
	out.Header = &m.hdr
	out.Term = in.Term
	out.Granted = in.Granted
	return out
}

func requestPreVoteResponseFromProto(in *ringkvv1.RequestPreVoteResponse, out *raft.RequestPreVoteResponse) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.Granted = in.Granted
}

type timeoutNowRequestMsg struct {
	req ringkvv1.TimeoutNowRequest
	hdr ringkvv1.RaftHeader
}

func timeoutNowRequestToProto(group uint64, in *raft.TimeoutNowRequest) *ringkvv1.TimeoutNowRequest {
	m := new(timeoutNowRequestMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.req
	out.Group = group
	out.Header = &m.hdr
	return out
}

func timeoutNowRequestFromProto(in *ringkvv1.TimeoutNowRequest, out *raft.TimeoutNowRequest) {
	out.RPCHeader = headerFromProto(in.Header)
}

type timeoutNowResponseMsg struct {
	resp ringkvv1.TimeoutNowResponse
	hdr  ringkvv1.RaftHeader
}

func timeoutNowResponseToProto(in *raft.TimeoutNowResponse) *ringkvv1.TimeoutNowResponse {
	m := new(timeoutNowResponseMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	m.resp.Header = &m.hdr
	return &m.resp
}

func timeoutNowResponseFromProto(in *ringkvv1.TimeoutNowResponse, out *raft.TimeoutNowResponse) {
	out.RPCHeader = headerFromProto(in.Header)
}

type installSnapshotRequestMsg struct {
	req ringkvv1.InstallSnapshotRequest
	hdr ringkvv1.RaftHeader
}

func installSnapshotRequestToProto(group uint64, in *raft.InstallSnapshotRequest) *ringkvv1.InstallSnapshotRequest {
	m := new(installSnapshotRequestMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.req
	out.Group = group
	out.Header = &m.hdr
	out.SnapshotVersion = int64(in.SnapshotVersion)
	out.Term = in.Term
	out.Leader = in.Leader
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
	out.Peers = in.Peers
	out.Configuration = in.Configuration
	out.ConfigurationIndex = in.ConfigurationIndex
	out.Size = in.Size
	return out
}

func installSnapshotRequestFromProto(in *ringkvv1.InstallSnapshotRequest, out *raft.InstallSnapshotRequest) {
	out.RPCHeader = headerFromProto(in.Header)
	out.SnapshotVersion = raft.SnapshotVersion(in.SnapshotVersion)
	out.Term = in.Term
	out.Leader = in.Leader
	out.LastLogIndex = in.LastLogIndex
	out.LastLogTerm = in.LastLogTerm
	out.Peers = in.Peers
	out.Configuration = in.Configuration
	out.ConfigurationIndex = in.ConfigurationIndex
	out.Size = in.Size
}

type installSnapshotResponseMsg struct {
	resp ringkvv1.InstallSnapshotResponse
	hdr  ringkvv1.RaftHeader
}

func installSnapshotResponseToProto(in *raft.InstallSnapshotResponse) *ringkvv1.InstallSnapshotResponse {
	m := new(installSnapshotResponseMsg)
	headerToProto(&in.RPCHeader, &m.hdr)
	out := &m.resp
	out.Header = &m.hdr
	out.Term = in.Term
	out.Success = in.Success
	return out
}

func installSnapshotResponseFromProto(in *ringkvv1.InstallSnapshotResponse, out *raft.InstallSnapshotResponse) {
	out.RPCHeader = headerFromProto(in.Header)
	out.Term = in.Term
	out.Success = in.Success
}
