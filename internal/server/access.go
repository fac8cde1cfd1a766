package server

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/scriptgen/scriptgen/internal/access"
	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/limits"
)

// newAccess builds who-may-do-what: the operators' tokens, the writers' keys
// (and JWTs when AUTH_JWKS_URL is set), and whether a server without keys
// runs open (on loopback only).
func (s *Server) newAccess(ctx context.Context) error {
	admin, err := access.ParseAdminTokens(s.cfg.AdminToken, s.cfg.AdminTokens)
	if err != nil {
		return err
	}
	var jwt *access.JWTVerifier
	if s.cfg.AuthJWKSURL != "" {
		jwt, err = access.NewJWTVerifier(ctx, access.JWTConfig{
			JWKSURL:       s.cfg.AuthJWKSURL,
			Issuer:        s.cfg.AuthJWTIssuer,
			Audience:      s.cfg.AuthJWTAudience,
			TenantClaim:   s.cfg.AuthJWTTenantClaim,
			ProjectsClaim: s.cfg.AuthJWTProjectsClaim,
		})
		if err != nil {
			return err
		}
	}
	s.auth = access.New(s.store, access.Config{
		Off:      s.cfg.AuthOff(),
		Loopback: Loopback(s.cfg.ListenAddr),
		Admin:    admin,
		JWT:      jwt,
		Log:      s.log,
	})
	return nil
}

// apiLimits are the caps and per-tenant limits of the configuration.
func (s *Server) apiLimits() api.Limits {
	return api.Limits{
		Rate: limits.NewRateLimiter(s.store, limits.Rate{
			PerSecond: s.cfg.TenantRate,
			Burst:     s.cfg.TenantBurst,
		}, nil),
		Streams:          limits.NewStreamCaps(s.cfg.MaxStreams, s.cfg.MaxStreamsPerClient, s.cfg.MaxStreamsPerJob),
		TokensPerDay:     int64(s.cfg.TenantTokensPerDay),
		TokensPerMonth:   int64(s.cfg.TenantTokensPerMon),
		MaxDocuments:     int64(s.cfg.TenantMaxDocuments),
		MaxDocumentBytes: int64(s.cfg.TenantMaxDocBytes),
	}
}

// announceAccess says at start, loudly when it is so, that writers need no
// credential.
func (s *Server) announceAccess(ctx context.Context) {
	switch mode := s.auth.Mode(ctx); mode {
	case "off":
		s.log.Warn("AUTH=off: every writer call is served without a credential; only run so behind a proxy that authenticates")
	case "open":
		s.log.Warn("No API key exists: writer calls are served without a credential, on loopback only. " +
			"Create a key (scriptgen keys create --tenant T --name N) and every writer call will need one.")
	case "not_configured":
		s.log.Warn("Listening beyond loopback with no API key: writer calls are refused (401) until one exists " +
			"(scriptgen keys create --tenant T --name N), or AUTH=off")
	default:
		s.log.Info("Writer calls need a credential", "auth", mode)
	}
}

// Loopback reports whether addr (host:port) listens on loopback addresses
// only: ":8002" and "0.0.0.0:8002" listen everywhere.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// errAccess wraps a configuration error of access for the command line.
func errAccess(err error) error { return fmt.Errorf("access: %w", err) }
