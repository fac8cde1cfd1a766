// Package apispec holds scriptgen's OpenAPI description (openapi.yaml, next
// to this file), embedded in the binary: the server serves it at
// GET /api/openapi.yaml, and internal/api's tests hold the route tables and
// the real answers against it.
package apispec

import _ "embed"

// YAML is api/openapi.yaml, the OpenAPI 3.1 description of every route of
// internal/api/routes.go.
//
//go:embed openapi.yaml
var YAML []byte
