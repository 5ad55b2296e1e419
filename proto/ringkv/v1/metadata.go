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
)
