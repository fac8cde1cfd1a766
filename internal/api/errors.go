package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/scriptgen/scriptgen/internal/httpx/response"
	"github.com/scriptgen/scriptgen/internal/job"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/store"
)

// domainErrors answers a handler's error: a domain error with its status,
// any other with a 500 that logs it. This is the one place where domain
// errors become statuses; the writer handlers embed it.
type domainErrors struct {
	log *slog.Logger
	// writeFailed, when set, hears of every error that IsUnavailable (for
	// /health's "writes failing").
	writeFailed func(error)
}

func (d domainErrors) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ve *job.ValidationError
	var le *limitError
	var me unsupportedMediaError
	switch {
	case errors.As(err, &ve):
		writeValidation(w, ve)
	case errors.As(err, &le):
		// A client over a limit gets its connection back closed, so that
		// holding refused connections open costs it, not the server.
		w.Header().Set("Connection", "close")
		if le.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(limits.RetryAfterSeconds(le.retryAfter)))
		}
		response.Error(w, le.status, le.code, le.message)
	case errors.As(err, &me):
		response.Error(w, http.StatusUnsupportedMediaType, "unsupported_media_type", me.message)
	case errors.Is(err, job.ErrNotFound):
		response.Error(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, job.ErrIdempotencyMismatch):
		response.Error(w, http.StatusUnprocessableEntity, "idempotency_key_reused", err.Error())
	case errors.Is(err, job.ErrIdempotencyInFlight):
		response.Error(w, http.StatusConflict, "idempotency_key_in_flight", err.Error())
	case errors.Is(err, job.ErrNotCancellable):
		response.Error(w, http.StatusConflict, "not_cancellable", err.Error())
	case errors.Is(err, r.Context().Err()) && r.Context().Err() != nil:
		response.Error(w, 499, "client_closed", "request cancelled")
	case store.IsUnavailable(err):
		d.log.Warn("Database unavailable", "method", r.Method, "path", r.URL.Path, "request_id", response.RequestID(r), "err", err)
		if d.writeFailed != nil {
			d.writeFailed(err)
		}
		unavailable503(w)
	default:
		response.ServerError(w, r, d.log, err)
	}
}

// writeValidation answers bad input: 400 invalid_request naming the field,
// 413 too_large for a body over its limit.
func writeValidation(w http.ResponseWriter, err error) {
	var ve *job.ValidationError
	if !errors.As(err, &ve) {
		response.Error(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	status, code := http.StatusBadRequest, "invalid_request"
	if ve.TooLarge {
		status, code = http.StatusRequestEntityTooLarge, "too_large"
	}
	response.Fail(w, status, response.Problem{Code: code, Message: ve.Error(), Field: ve.Field})
}
