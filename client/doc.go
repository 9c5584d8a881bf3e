// Package client is the Go client of authzd's HTTP API v1.
//
// A module asks one question on its request path:
//
//	c, err := client.New("http://authzd:8080", os.Getenv("AUTHZ_TOKEN"))
//	...
//	d, err := c.HasModulePermission(ctx, tenantID, userID, "scaibunker:execute",
//		client.WithResource("bunker", bunkerID))
//	if err != nil || !d.Allowed {
//		// deny
//	}
//
// An error is never a yes: HasModulePermission answers Allowed=false with every error.
// Package client/middleware wraps the question into a net/http middleware.
//
// Every call is bounded by a timeout (DefaultTimeout unless WithTimeout says otherwise)
// that covers its retries. Calls that are safe to repeat (GET, PUT, DELETE and the
// read-only checks) are retried with exponential backoff and full jitter on network
// errors, 429, 502, 503 and 504; CreateToken is retried only when the connection could
// not be opened, so a token is never created twice. 4xx answers are never retried.
//
// Failures that authzd answered come back as *Error; test them with IsNotFound,
// IsUnavailable and friends, or errors.As.
//
// This is a Go module of its own (github.com/scailabs/authzd/client) so that importing it
// brings none of authzd's requirements. Its request and answer types therefore repeat the
// server's wire types instead of importing them; the main module's clientcontract tests
// call every route against api/openapi.yaml and a real authzd to keep the two in line.
package client
