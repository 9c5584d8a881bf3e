// Package api holds the OpenAPI document of authzd's HTTP contract v1.
//
// The server serves it at GET /v1/openapi.yaml; tests compare its routes with the
// server's router and with the routes package client calls.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml, an OpenAPI 3.0 document.
//
//go:embed openapi.yaml
var OpenAPI []byte
