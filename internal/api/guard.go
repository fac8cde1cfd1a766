package api

import (
	"net/http"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
)

// guardInput refuses, before any handler, a request whose path or query
// could not be an id, a cursor or a title: not valid UTF-8, a control
// character (a query's values may hold line breaks and tabs, as the body's
// texts may), a query that does not parse or gives a parameter twice. Ids
// and cursors go to the database as they come, and PostgreSQL refuses such
// text with an error that is not the client's to read.
func guardInput(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !cleanText(r.URL.Path, false) {
			response.Error(w, http.StatusBadRequest, "invalid_path", "the path is not valid UTF-8 or contains a control character")
			return
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			response.Error(w, http.StatusBadRequest, "invalid_query", "malformed query string: "+err.Error())
			return
		}
		for k, vs := range q {
			if !cleanText(k, false) {
				response.Error(w, http.StatusBadRequest, "invalid_query", "a query parameter's name is not valid UTF-8 or contains a control character")
				return
			}
			if len(vs) > 1 {
				// Every parameter of the API takes one value; of two, which
				// one counts would be a guess.
				response.Error(w, http.StatusBadRequest, "invalid_query", "query parameter "+k+" is given more than once")
				return
			}
			for _, v := range vs {
				if !cleanText(v, true) {
					response.Error(w, http.StatusBadRequest, "invalid_query", "query parameter "+k+" is not valid UTF-8 or contains a control character")
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// cleanText: valid UTF-8 without control characters, by the rule of the
// body's texts (job.ControlCharacter); breaks allows line breaks and tabs.
func cleanText(s string, breaks bool) bool {
	_, found := job.ControlCharacter(s, breaks)
	return utf8.ValidString(s) && !found
}

// bodyDeadline gives a request d to deliver its body, so that a client that
// announces a body and stalls does not hold a connection and a goroutine for
// ever: the read fails, the handler answers 400 and the connection is closed.
// A handler that has read its whole body may run past d (a rollback):
// net/http lifts the deadline when it starts watching the connection after
// the body's end. Requests without a body (the SSE streams) are left alone.
func bodyDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			http.NewResponseController(w).SetReadDeadline(time.Now().Add(d)) // not supported: no deadline, as before
		}
		next.ServeHTTP(w, r)
	})
}
