// Package job owns the job and its rules: its kinds, its lifecycle
// (queued → running → succeeded | failed | cancelled), its backends and the
// sentinel errors of the domain. It keeps invariant 2 (fencing) visible in the
// types: every dispatch is a (job id, dispatch epoch) pair.
package job

import (
	"encoding/json"
	"errors"
	"time"
)

// Kind is what a job does.
type Kind string

// The kinds of job.
const (
	KindGeneration  Kind = "generation"
	KindRAGDocument Kind = "rag_document"
)

// Status is where a job stands in its lifecycle.
type Status string

// The statuses of a job.
const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether no further transition can happen.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// Valid reports whether s is a known status.
func (s Status) Valid() bool {
	switch s {
	case StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusCancelled:
		return true
	}
	return false
}

// Backend is the runner a job is dispatched to.
type Backend string

// The backends.
const (
	BackendDurable         Backend = "durable"
	BackendBackgroundTasks Backend = "background_tasks"
)

// Valid reports whether b is a known backend.
func (b Backend) Valid() bool { return b == BackendDurable || b == BackendBackgroundTasks }

// DefaultMaxAttempts bounds how often a job is tried.
const DefaultMaxAttempts = 3

// Job is one row of the system of record.
type Job struct {
	ID             string
	Kind           Kind
	ProjectID      string
	Payload        json.RawMessage
	IdempotencyKey string
	RequestHash    string
	Status         Status
	Backend        Backend
	DispatchEpoch  int64
	Attempt        int
	MaxAttempts    int
	LeaseOwner     string
	LeaseExpiresAt time.Time
	Progress       int
	Stage          string
	Result         json.RawMessage
	Error          string
	CreatedAt      time.Time
	UpdatedAt      time.Time
	StartedAt      time.Time
	FinishedAt     time.Time
	// RetryAt is when a job queued again after a failed attempt may be
	// claimed (its backoff, Backoff); zero when it may be claimed now.
	RetryAt time.Time

	// NoDocuments is not stored: the claim that leased the job saw no
	// document chunks in its project, so its run need not look for context.
	// Only claims that look (PostgreSQL's, of dispatches and background jobs) set it.
	NoDocuments bool
}

// Dispatch is the fencing token of one dispatch of a job.
type Dispatch struct {
	JobID string
	Epoch int64
}

// Lease is what a runner holds while it runs a job: the dispatch and the owner.
type Lease struct {
	Dispatch
	Owner string
}

// Dispatch is j's current dispatch.
func (j *Job) Dispatch() Dispatch { return Dispatch{JobID: j.ID, Epoch: j.DispatchEpoch} }

// Lease returns the lease a runner holds after claiming j.
func (j *Job) Lease() Lease { return Lease{Dispatch: j.Dispatch(), Owner: j.LeaseOwner} }

// Episode is a saved script of a project, numbered once per job.
type Episode struct {
	ProjectID string
	Number    int
	Title     string
	Script    string
	JobID     string
	CreatedAt time.Time
}

// Event is one entry of a job's append-only event log.
type Event struct {
	JobID     string
	Seq       int64
	Type      EventType
	Status    Status
	Progress  int
	Stage     string
	Message   string
	Data      json.RawMessage
	CreatedAt time.Time
}

// EventType says what an event records.
type EventType string

// The event types.
const (
	EventStatus   EventType = "status"
	EventProgress EventType = "progress"
	EventResult   EventType = "result"
	EventError    EventType = "error"
)

// Domain outcomes, translated to HTTP statuses only by the API.
var (
	ErrNotFound            = errors.New("not found")
	ErrIdempotencyMismatch = errors.New("idempotency key reused with a different request")
	ErrIdempotencyInFlight = errors.New("a request with this idempotency key is still in flight")
	ErrStaleLease          = errors.New("stale lease: the job was re-dispatched or finished elsewhere")
	ErrNotCancellable      = errors.New("job is already finished")
	ErrInvalid             = errors.New("invalid input")
)
