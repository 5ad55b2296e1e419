package ringkvv1

// gRPC metadata keys that the nodes and the client library agree on. They
// live beside the generated API because both ends of the wire need them and
// neither may import the other.
const (
	// MetadataLeader is a response header: the ID of the node that leads
	// the request's shard and served it. A client whose cached shard map
	// names another leader updates its cache from it.
	MetadataLeader = "ringkv-leader"
	// MetadataForwarded marks a request one node forwarded to another. A
	// node never forwards a request that carries it again, so a stale map
	// can cost at most one extra hop, never a loop.
	MetadataForwarded = "ringkv-forwarded"
	// MetadataRequestID is a request header and a response header: the ID
	// of one client call, for tracing it through the logs of every node it
	// passes (the node that received it and the shard leader it was
	// forwarded to). Up to 64 letters, digits, '.', '_', ':' or '-'; a node
	// that receives none, or an invalid one, makes one (16 hex digits). It is
	// not the exactly-once RequestID of writes, a different thing.
	MetadataRequestID = "x-request-id"
)
