package ringkvv1

// Credentials travel in the standard gRPC/HTTP "authorization" metadata,
// with one of two schemes. The client library sends them and the nodes
// read them; see service Auth in auth.proto.
const (
	// MetadataAuthorization is the request header that carries a caller's
	// credentials.
	MetadataAuthorization = "authorization"
	// AuthSchemeBasic precedes the standard base64 of "NAME:PASSWORD".
	AuthSchemeBasic = "Basic "
	// AuthSchemeBearer precedes a static token.
	AuthSchemeBearer = "Bearer "
)
