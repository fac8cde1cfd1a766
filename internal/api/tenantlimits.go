package api

import (
	"fmt"
	"net/http"
	"time"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/limits"
	"github.com/scriptgen/scriptgen/internal/store"
)

// Limits are what keeps one client from hurting the others. A zero field
// is no limit of that kind.
type Limits struct {
	// Rate limits the submissions (jobs and documents) of a tenant, across
	// replicas.
	Rate *limits.RateLimiter
	// Streams caps the open event streams.
	Streams *limits.StreamCaps
	// TokensPerDay and TokensPerMonth are a tenant's LLM token budgets: a
	// submission is refused once the day's or the month's use reached them.
	TokensPerDay, TokensPerMonth int64
	// MaxDocuments and MaxDocumentBytes are a tenant's document quota.
	MaxDocuments, MaxDocumentBytes int64
	Clock                          clock.Clock
}

// limitError is a call refused by a limit: 429 (or the status given) with
// Retry-After when a wait helps.
type limitError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *limitError) Error() string { return e.message }

// tenantLimits applies Limits to the caller of a request.
type tenantLimits struct {
	cfg   Limits
	store store.LimitStore
}

func newTenantLimits(cfg Limits, st store.LimitStore) *tenantLimits {
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	return &tenantLimits{cfg: cfg, store: st}
}

// UsagePeriods are the day and month of t (UTC), as usage is kept.
func UsagePeriods(t time.Time) (day, month string) {
	t = t.UTC()
	return t.Format("2006-01-02"), t.Format("2006-01")
}

// limited reports whether the caller's submissions count against a tenant's
// limits: operators' do not, nor do those of a server without credentials
// (open on loopback, or AUTH=off behind a proxy), whose callers share no
// tenant that a bucket could be fair to.
func limited(p access.Principal) bool {
	return p.Kind == access.KindKey || p.Kind == access.KindJWT
}

// admitJob takes a submission's token of the tenant's rate and checks its
// token budget.
func (l *tenantLimits) admitJob(r *http.Request) error {
	p := principal(r)
	if l == nil || !limited(p) {
		return nil
	}
	if err := l.rate(r, p); err != nil {
		return err
	}
	return l.budget(r, p)
}

// admitDocument is admitJob for a document of size bytes, with the
// tenant's document quota.
func (l *tenantLimits) admitDocument(r *http.Request, size int) error {
	p := principal(r)
	if l == nil || !limited(p) {
		return nil
	}
	if err := l.rate(r, p); err != nil {
		return err
	}
	if l.cfg.MaxDocuments <= 0 && l.cfg.MaxDocumentBytes <= 0 {
		return nil
	}
	count, bytes, err := l.store.DocumentUsage(r.Context(), p.Tenant)
	if err != nil {
		return err
	}
	if l.cfg.MaxDocuments > 0 && count+1 > l.cfg.MaxDocuments {
		return &limitError{status: http.StatusForbidden, code: "document_quota_exceeded",
			message: fmt.Sprintf("the tenant has %d documents, its quota: delete some first", count)}
	}
	if l.cfg.MaxDocumentBytes > 0 && bytes+int64(size) > l.cfg.MaxDocumentBytes {
		return &limitError{status: http.StatusForbidden, code: "document_quota_exceeded",
			message: fmt.Sprintf("the tenant's documents hold %d bytes; this one (%d) would pass its quota of %d", bytes, size, l.cfg.MaxDocumentBytes)}
	}
	return nil
}

func (l *tenantLimits) rate(r *http.Request, p access.Principal) error {
	if l.cfg.Rate == nil {
		return nil
	}
	ok, wait, err := l.cfg.Rate.Allow(r.Context(), p.Tenant)
	if err != nil {
		return err
	}
	if !ok {
		return &limitError{status: http.StatusTooManyRequests, code: "rate_limited", retryAfter: wait,
			message: "too many submissions from this tenant; try again after Retry-After seconds"}
	}
	return nil
}

// budget refuses a generation once the tenant used its tokens of the day or
// the month, before it costs anything more.
func (l *tenantLimits) budget(r *http.Request, p access.Principal) error {
	if l.cfg.TokensPerDay <= 0 && l.cfg.TokensPerMonth <= 0 {
		return nil
	}
	now := l.cfg.Clock.Now().UTC()
	day, month := UsagePeriods(now)
	check := []struct {
		period string
		budget int64
		next   time.Time
	}{
		{day, l.cfg.TokensPerDay, time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)},
		{month, l.cfg.TokensPerMonth, time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range check {
		if c.budget <= 0 {
			continue
		}
		u, err := l.store.GetUsage(r.Context(), p.Tenant, c.period)
		if err != nil {
			return err
		}
		if u.Tokens >= c.budget {
			return &limitError{status: http.StatusTooManyRequests, code: "budget_exhausted", retryAfter: c.next.Sub(now),
				message: fmt.Sprintf("the tenant used %d of its %d LLM tokens for %s; GET /api/usage shows its use", u.Tokens, c.budget, c.period)}
		}
	}
	return nil
}

// openStream takes an event stream slot for the caller on the job of the
// path; the caller releases it when the stream ends.
func (l *tenantLimits) openStream(r *http.Request) (func(), error) {
	if l == nil || l.cfg.Streams == nil {
		return func() {}, nil
	}
	client := principal(r).Name
	if p := principal(r); p.Kind == access.KindOpen {
		client = "addr:" + access.ClientIP(r)
	}
	release, over := l.cfg.Streams.Acquire(client, r.PathValue("id"))
	switch over {
	case "":
		return release, nil
	case "total":
		return nil, &limitError{status: http.StatusServiceUnavailable, code: "too_many_streams", retryAfter: 5 * time.Second,
			message: "the server has as many event streams open as it takes; try again shortly"}
	case "client":
		return nil, &limitError{status: http.StatusTooManyRequests, code: "too_many_streams", retryAfter: 5 * time.Second,
			message: fmt.Sprintf("this credential has %d event streams open, its most; close one first", l.cfg.Streams.PerClient)}
	}
	return nil, &limitError{status: http.StatusTooManyRequests, code: "too_many_streams", retryAfter: 5 * time.Second,
		message: fmt.Sprintf("this job has %d event streams open, its most", l.cfg.Streams.PerJob)}
}
