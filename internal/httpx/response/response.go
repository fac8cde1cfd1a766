// Package response writes scriptgen's HTTP answers: JSON bodies, the error
// shape of docs/design.md ({"error": {"code", "message", "field"?}}), and the one
// path of a 500, which logs the error with the request's id and tells the
// client only that id. Which domain error becomes which status is the api
// package's business, not this one's.
package response

import (
	"log/slog"
	"net/http"

	"github.com/segmentio/encoding/json"
)

// JSON answers status with v as its JSON body.
//
// It encodes with segmentio/encoding, which writes what encoding/json writes
// (HTML escaped, map keys sorted, a newline after the value), and is told to
// trust raw JSON: the json.RawMessage fields of an answer (a job's payload
// and result, an event's data) are JSON scriptgen encoded itself before it
// stored them, and encoding/json compacts and checks each of them again at
// every answer — 18 % of serve's CPU on GET /api/generation, whose page of 50
// jobs now encodes in about a third of the time (bench/README.md, issue 21).
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetTrustRawMessage(true)
	enc.Encode(v)
}

// OK answers 200 with v.
func OK(w http.ResponseWriter, v any) { JSON(w, http.StatusOK, v) }

// Accepted answers 202 with v.
func Accepted(w http.ResponseWriter, v any) { JSON(w, http.StatusAccepted, v) }

// Problem is the error object of an error answer.
type Problem struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Field names the input at fault, when there is one.
	Field string `json:"field,omitempty"`
}

// ErrorBody is the body of an error answer.
type ErrorBody struct {
	Error Problem `json:"error"`
}

// Error answers status with an error of code and message.
func Error(w http.ResponseWriter, status int, code, message string) {
	Fail(w, status, Problem{Code: code, Message: message})
}

// Fail answers status with p as its error.
func Fail(w http.ResponseWriter, status int, p Problem) { JSON(w, status, ErrorBody{Error: p}) }

// ServerError answers 500 for err, which the client does not get to read: it
// is logged with the request's id, and the answer names that id only.
func ServerError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	Fail(w, http.StatusInternalServerError, InternalProblem(w, r, log, "internal", err))
}

// InternalProblem logs err with the request's id and returns the error object
// of a 500 under code, whose message names only that id. ServerError uses it;
// so do answers that carry more than the error (a failed rollback's steps).
func InternalProblem(w http.ResponseWriter, r *http.Request, log *slog.Logger, code string, err error) Problem {
	id := RequestID(r)
	if id == "" { // not behind WithRequestID: this answer gets an id of its own
		id = newRequestID()
	}
	if w.Header().Get(RequestIDHeader) == "" {
		w.Header().Set(RequestIDHeader, id)
	}
	if log == nil {
		log = slog.Default()
	}
	log.Error("Request failed", "method", r.Method, "path", r.URL.Path, "request_id", id, "err", err)
	return Problem{Code: code, Message: "internal error (request id " + id + ")"}
}
