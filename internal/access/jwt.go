package access

import (
	"context"
	"errors"
	"fmt"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// JWTConfig configures the verification of bearer JWTs for applications that
// already sign their users in (AUTH_JWKS_URL and friends).
type JWTConfig struct {
	// JWKSURL is where the signing keys are published; keys are fetched at
	// start, refreshed in the background, and looked up again when a token
	// names a key id not seen yet.
	JWKSURL string
	// Issuer and Audience, when set, must match the token's iss and aud.
	Issuer   string
	Audience string
	// TenantClaim names the claim holding the tenant (default "tenant");
	// ProjectsClaim the optional list of projects (default "projects").
	TenantClaim   string
	ProjectsClaim string
}

// JWTVerifier checks JWTs against a JWKS.
type JWTVerifier struct {
	cfg    JWTConfig
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// validMethods are the asymmetric algorithms accepted; "none" and HMAC never
// are (a JWKS publishes public keys).
var validMethods = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// NewJWTVerifier fetches the JWKS (ctx bounds the background refresh) and
// returns a verifier.
func NewJWTVerifier(ctx context.Context, cfg JWTConfig) (*JWTVerifier, error) {
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.ProjectsClaim == "" {
		cfg.ProjectsClaim = "projects"
	}
	kf, err := keyfunc.NewDefaultCtx(ctx, []string{cfg.JWKSURL})
	if err != nil {
		return nil, fmt.Errorf("AUTH_JWKS_URL %s: %w", cfg.JWKSURL, err)
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(validMethods),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30e9),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &JWTVerifier{cfg: cfg, keys: kf, parser: jwt.NewParser(opts...)}, nil
}

// Verify checks a token and returns the writer it names.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, v.keys.KeyfuncCtx(ctx)); err != nil {
		return Principal{}, err
	}
	tenant, _ := claims[v.cfg.TenantClaim].(string)
	if err := ValidateTenant(tenant); err != nil {
		return Principal{}, fmt.Errorf("claim %q: %w", v.cfg.TenantClaim, err)
	}
	p := Principal{Kind: KindJWT, Tenant: tenant}
	if sub, err := claims.GetSubject(); err == nil && sub != "" {
		p.Name = "jwt:" + sub
	} else {
		p.Name = "jwt"
	}
	if raw, present := claims[v.cfg.ProjectsClaim]; present {
		list, ok := raw.([]any)
		if !ok {
			return Principal{}, fmt.Errorf("claim %q must be a list of project ids", v.cfg.ProjectsClaim)
		}
		p.Projects = make([]string, 0, len(list))
		for _, item := range list {
			s, ok := item.(string)
			if !ok || s == "" {
				return Principal{}, errors.New("claim " + v.cfg.ProjectsClaim + " holds something other than a project id")
			}
			p.Projects = append(p.Projects, s)
		}
	}
	return p, nil
}
