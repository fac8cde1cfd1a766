package access

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// KeyStore is what the authenticator reads of the stored API keys.
type KeyStore interface {
	// KeyByPrefix returns the key with this prefix, revoked or not, or
	// ErrNoKey.
	KeyByPrefix(ctx context.Context, prefix string) (Key, error)
	// HasActiveKeys reports whether any key is in force.
	HasActiveKeys(ctx context.Context) (bool, error)
}

// Config configures an Authenticator.
type Config struct {
	// Off serves every writer call without a credential (AUTH=off).
	Off bool
	// Loopback says the server listens on loopback addresses only; with no
	// key and no JWKS it then runs open, for a first try on one's own machine.
	Loopback bool
	Admin    AdminTokens
	// JWT, when set, accepts bearer JWTs verified against its JWKS.
	JWT *JWTVerifier
	// CacheFor is how long a key looked up (or found missing, or revoked) is
	// believed before the store is asked again: the time a revocation or a
	// new key takes to reach every replica. Default 2 s.
	CacheFor time.Duration
	Clock    clock.Clock
	Log      *slog.Logger
}

// Denied is why a call was refused. The API turns Code into a status.
type Denied struct {
	// Code is one of the Code* constants.
	Code    string
	Message string
	// RetryAfter, for CodeTooManyFailures, is when the client may try again.
	RetryAfter time.Duration
}

func (d *Denied) Error() string { return d.Code + ": " + d.Message }

// Codes of Denied.
const (
	CodeUnauthorized    = "unauthorized"        // no or a wrong credential: 401
	CodeNotConfigured   = "auth_not_configured" // beyond loopback with no key yet: 401
	CodeTooManyFailures = "too_many_failures"   // 429
	CodeAdminDisabled   = "admin_disabled"      // no admin token configured: 403
	CodeWrongAdminToken = "forbidden"           // a token that is not an admin token: 403
)

// Authenticator recognises callers.
type Authenticator struct {
	cfg      Config
	keys     KeyStore
	failures *Failures

	mu       sync.Mutex
	cache    map[string]cachedKey
	anyKey   bool
	anyKeyAt time.Time
}

type cachedKey struct {
	key Key
	err error
	at  time.Time
}

// maxCachedKeys bounds the cache: a client sending made-up prefixes cannot
// grow it without end (it is emptied when full).
const maxCachedKeys = 10000

// New returns an Authenticator over keys.
func New(keys KeyStore, cfg Config) *Authenticator {
	if cfg.CacheFor <= 0 {
		cfg.CacheFor = 2 * time.Second
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{
		cfg:      cfg,
		keys:     keys,
		failures: NewFailures(cfg.Clock, 20, time.Minute),
		cache:    map[string]cachedKey{},
	}
}

// Mode names how writers are recognised now: "off" (AUTH=off), "open" (no
// credential needed: loopback with no key), "required", or "not_configured"
// (beyond loopback with no key: writer calls are refused).
func (a *Authenticator) Mode(ctx context.Context) string {
	switch {
	case a.cfg.Off:
		return "off"
	case a.mustRequire(ctx):
		return "required"
	case a.cfg.Loopback:
		return "open"
	}
	return "not_configured"
}

// Writer recognises the caller of a writer route. With query set, a
// credential may also come as ?access_token= (a browser's EventSource cannot
// send headers).
func (a *Authenticator) Writer(r *http.Request, query bool) (Principal, error) {
	if a.cfg.Off {
		return Open, nil
	}
	cred, err := credential(r, query)
	if err != nil {
		return Principal{}, a.fail(r, "", err.Error())
	}
	if cred == "" {
		if !a.cfg.Off && a.cfg.JWT == nil {
			// Whether this server is open depends on the database; one
			// that cannot tell is unavailable (503, retry), not a reason
			// to tell an open server's client its credential is missing
			// (401, which a client does not retry).
			if _, err := a.credentialsRequired(r.Context()); err != nil {
				return Principal{}, fmt.Errorf("tell whether API keys exist: %w", err)
			}
		}
		switch mode := a.Mode(r.Context()); mode {
		case "open":
			return Open, nil
		case "not_configured":
			return Principal{}, &Denied{Code: CodeNotConfigured, Message: "this server listens beyond loopback and has no API key yet: create one with `scriptgen keys create`, or set AUTH=off"}
		}
		return Principal{}, &Denied{Code: CodeUnauthorized, Message: "missing credential: send Authorization: Bearer <API key>"}
	}
	if d := a.blocked(r); d != nil {
		return Principal{}, d
	}
	if name, ok := a.cfg.Admin.Match(cred); ok {
		return Principal{Kind: KindAdmin, Name: name}, nil
	}
	if LooksLikeKey(cred) {
		k, err := a.lookup(r.Context(), cred)
		if err != nil {
			return Principal{}, a.fail(r, cred, err.Error())
		}
		return k.Principal(), nil
	}
	if a.cfg.JWT != nil {
		p, err := a.cfg.JWT.Verify(r.Context(), cred)
		if err != nil {
			return Principal{}, a.fail(r, cred, "JWT refused: "+err.Error())
		}
		return p, nil
	}
	return Principal{}, a.fail(r, cred, "not an API key")
}

// AdminName recognises an operator and returns the name of its token.
func (a *Authenticator) AdminName(r *http.Request) (string, error) {
	if a.cfg.Admin.Empty() {
		return "", &Denied{Code: CodeAdminDisabled, Message: "the admin API is off: set ADMIN_TOKEN (or ADMIN_TOKENS) to enable it"}
	}
	cred, err := credential(r, false)
	if err != nil {
		return "", a.fail(r, "", err.Error())
	}
	if cred == "" {
		return "", &Denied{Code: CodeUnauthorized, Message: "missing Authorization: Bearer <admin token>"}
	}
	if d := a.blocked(r); d != nil {
		return "", d
	}
	if LooksLikeKey(cred) {
		// A writer's key at an operator's door is no guess at an admin
		// token: refused, not counted.
		return "", &Denied{Code: CodeWrongAdminToken, Message: "a writer's API key cannot call the admin API"}
	}
	name, ok := a.cfg.Admin.Match(cred)
	if !ok {
		d := a.fail(r, cred, "wrong admin token")
		if d.Code == CodeUnauthorized {
			d.Code = CodeWrongAdminToken
		}
		return "", d
	}
	return name, nil
}

// credential reads "Authorization: Bearer <credential>", sent once, or with
// query the access_token parameter.
func credential(r *http.Request, query bool) (string, error) {
	hs := r.Header.Values("Authorization")
	if len(hs) > 1 {
		return "", errors.New("Authorization must be sent once")
	}
	if len(hs) == 1 && hs[0] != "" {
		// The scheme's name is case-insensitive (RFC 9110, section 11.1).
		scheme, given, ok := strings.Cut(hs[0], " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || given == "" {
			return "", errors.New("malformed Authorization header: want 'Bearer <credential>'")
		}
		return given, nil
	}
	if query {
		return r.URL.Query().Get("access_token"), nil
	}
	return "", nil
}

// mustRequire is credentialsRequired failing closed: a database that does
// not answer must not open the server to everyone.
func (a *Authenticator) mustRequire(ctx context.Context) bool {
	required, err := a.credentialsRequired(ctx)
	if err != nil {
		a.cfg.Log.Warn("Could not tell whether API keys exist; requiring a credential", "err", err)
		return true
	}
	return required
}

// credentialsRequired: a key in force, or a JWKS, means every writer call
// needs a credential. An error is the key store's (true with it).
func (a *Authenticator) credentialsRequired(ctx context.Context) (bool, error) {
	if a.cfg.JWT != nil {
		return true, nil
	}
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	if now.Sub(a.anyKeyAt) < a.cfg.CacheFor {
		defer a.mu.Unlock()
		return a.anyKey, nil
	}
	a.mu.Unlock()
	has, err := a.keys.HasActiveKeys(ctx)
	if err != nil {
		return true, err
	}
	a.mu.Lock()
	a.anyKey, a.anyKeyAt = has, now
	a.mu.Unlock()
	return has, nil
}

func (a *Authenticator) lookup(ctx context.Context, plain string) (Key, error) {
	prefix, ok := KeyPrefix(plain)
	if !ok {
		return Key{}, errors.New("malformed API key")
	}
	now := a.cfg.Clock.Now()
	a.mu.Lock()
	c, hit := a.cache[prefix]
	a.mu.Unlock()
	if !hit || now.Sub(c.at) >= a.cfg.CacheFor {
		k, err := a.keys.KeyByPrefix(ctx, prefix)
		if err != nil && !errors.Is(err, ErrNoKey) {
			return Key{}, fmt.Errorf("look up API key: %w", err)
		}
		c = cachedKey{key: k, err: err, at: now}
		a.mu.Lock()
		if len(a.cache) >= maxCachedKeys {
			clear(a.cache)
		}
		a.cache[prefix] = c
		a.mu.Unlock()
	}
	if c.err != nil {
		return Key{}, errors.New("unknown API key")
	}
	if subtle.ConstantTimeCompare([]byte(HashKey(plain)), []byte(c.key.Hash)) != 1 {
		return Key{}, errors.New("wrong API key")
	}
	if !c.key.Active() {
		return Key{}, errors.New("revoked API key")
	}
	return c.key, nil
}

// blocked refuses a client that failed too often of late.
func (a *Authenticator) blocked(r *http.Request) *Denied {
	if wait := a.failures.Blocked(ClientIP(r)); wait > 0 {
		return &Denied{Code: CodeTooManyFailures, Message: "too many failed attempts from this address; try again later", RetryAfter: wait}
	}
	return nil
}

// fail records and logs a failed attempt. The log shows the credential's
// visible part only (a key's prefix), never a secret.
func (a *Authenticator) fail(r *http.Request, cred, why string) *Denied {
	ip := ClientIP(r)
	a.failures.Add(ip)
	shown := ""
	if p, ok := KeyPrefix(cred); ok {
		shown = p
	}
	a.cfg.Log.Warn("Authentication failed", "client", ip, "method", r.Method, "path", r.URL.Path, "reason", why, "key_prefix", shown)
	if cred != "" {
		// Whether a key's prefix exists, or why a token was refused, is for
		// the log, not for a client that may be guessing.
		why = "invalid, expired or revoked credential"
	}
	return &Denied{Code: CodeUnauthorized, Message: why}
}

// ClientIP is the address of the peer (proxies' headers are not trusted).
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// MetricsToken reports whether the caller sent token (or an admin token);
// a wrong one counts as a failed attempt.
func (a *Authenticator) MetricsToken(r *http.Request, token string) bool {
	cred, err := credential(r, false)
	if err != nil || cred == "" || a.blocked(r) != nil {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(cred), []byte(token)) == 1 {
		return true
	}
	if _, ok := a.cfg.Admin.Match(cred); ok {
		return true
	}
	a.fail(r, cred, "wrong metrics token")
	return false
}
