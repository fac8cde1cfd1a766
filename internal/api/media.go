package api

import (
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// requireJSON refuses a body that is not JSON with 415. A web page can send
// text/plain, a form or multipart to any site without asking first (no CORS
// preflight); JSON it cannot, so this alone keeps other sites' pages from
// submitting for a writer whose browser holds a credential.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return unsupportedMediaError{"Content-Type is missing: send application/json"}
	}
	return jsonType(ct)
}

// jsonOrEmptyBody is requireJSON for a call whose body is optional and
// unused (cancel): no body and no Content-Type is fine, anything else must
// be JSON.
func jsonOrEmptyBody(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" && (r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody) {
		return nil
	}
	if ct == "" {
		return unsupportedMediaError{"Content-Type is missing: send application/json or no body"}
	}
	return jsonType(ct)
}

func jsonType(ct string) error {
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return unsupportedMediaError{fmt.Sprintf("Content-Type %q does not parse", ct)}
	}
	if mediaType != "application/json" {
		return unsupportedMediaError{fmt.Sprintf("Content-Type %q: must be application/json", mediaType)}
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return unsupportedMediaError{fmt.Sprintf("charset %q: JSON bodies are UTF-8", cs)}
	}
	return nil
}
