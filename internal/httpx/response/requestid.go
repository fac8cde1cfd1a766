package response

import (
	"crypto/rand"
	"net/http"
)

// RequestIDHeader carries a request's id, both ways.
const RequestIDHeader = "X-Request-Id"

// WithRequestID gives every request an id: the client's X-Request-Id when it
// is a sane one (a proxy's, so that both logs name the same request), else a
// new one. The id replaces the request's header, where RequestID reads it,
// and is echoed in the answer's header. The request itself is not copied (as
// r.WithContext would): the metrics middleware outside reads the route
// pattern that the ServeMux sets on it.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if len(r.Header.Values(RequestIDHeader)) != 1 || !saneRequestID(id) {
			id = newRequestID()
		}
		r.Header.Set(RequestIDHeader, id)
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

// RequestID is the id WithRequestID gave r ("" if r did not pass it).
func RequestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); saneRequestID(id) {
		return id
	}
	return ""
}

// saneRequestID: 1 to 128 characters that are safe in a header, a log line
// and a JSON message (letters, digits and -_.:+/=~).
func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '-' || c == '_' || c == '.' || c == ':' || c == '+' || c == '/' || c == '=' || c == '~':
		default:
			return false
		}
	}
	return true
}

// newRequestID is 128 random bits in 26 characters.
func newRequestID() string { return rand.Text() }
