package api

import (
	"net/http"

	apispec "github.com/scriptgen/scriptgen/api"
)

// openAPI serves the OpenAPI description of these routes (api/openapi.yaml,
// embedded in the binary): GET /api/openapi.yaml, for anyone.
func (a *API) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Write(apispec.YAML)
}
