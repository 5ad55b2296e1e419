// Package rpc is the gRPC edge of a node: thin adapters from the public API
// (proto/ringkv/v1) to the router, the forwarding client the router uses to
// reach other nodes, and the one function that maps errors to gRPC status
// codes.
//
// Input is validated here, before anything reaches Raft: an empty or
// oversized key or an oversized value is InvalidArgument with a message that
// names the limit. Every other package returns plain wrapped errors; only
// this package speaks in status codes, and only through toStatus.
package rpc
