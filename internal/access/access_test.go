package access

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/scriptgen/scriptgen/internal/clock"
)

// memKeys is an in-memory KeyStore; the SQL stores are tested by the store
// suite against both databases.
type memKeys struct {
	mu   sync.Mutex
	keys map[string]Key
	asks int
}

func (m *memKeys) KeyByPrefix(_ context.Context, prefix string) (Key, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asks++
	k, ok := m.keys[prefix]
	if !ok {
		return Key{}, ErrNoKey
	}
	return k, nil
}

func (m *memKeys) HasActiveKeys(context.Context) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.keys {
		if k.Active() {
			return true, nil
		}
	}
	return false, nil
}

func (m *memKeys) put(k Key) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]Key{}
	}
	m.keys[k.Prefix] = k
}

func request(cred string) *http.Request {
	r := httptest.NewRequest("GET", "/api/generation", nil)
	r.RemoteAddr = "192.0.2.7:5555"
	if cred != "" {
		r.Header.Set("Authorization", "Bearer "+cred)
	}
	return r
}

func code(err error) string {
	if d, ok := err.(*Denied); ok {
		return d.Code
	}
	if err == nil {
		return ""
	}
	return "other: " + err.Error()
}

const adminToken = "0123456789abcdef-admin"

func newAuth(t *testing.T, keys KeyStore, loopback bool, c clock.Clock) *Authenticator {
	t.Helper()
	admin, err := ParseAdminTokens(adminToken, "")
	if err != nil {
		t.Fatal(err)
	}
	return New(keys, Config{Loopback: loopback, Admin: admin, Clock: c})
}

func TestOpenOnlyOnLoopbackWithoutKeys(t *testing.T) {
	keys := &memKeys{}
	c := clock.NewFake(time.Unix(1e9, 0))
	open := newAuth(t, keys, true, c)
	if p, err := open.Writer(request(""), false); err != nil || p.Kind != KindOpen {
		t.Fatalf("loopback, no keys: %+v %v; want open", p, err)
	}
	if got := open.Mode(context.Background()); got != "open" {
		t.Fatalf("mode %q", got)
	}
	public := newAuth(t, keys, false, c)
	if _, err := public.Writer(request(""), false); code(err) != CodeNotConfigured {
		t.Fatalf("beyond loopback, no keys: %v; want %s", err, CodeNotConfigured)
	}
	off := New(keys, Config{Off: true})
	if p, err := off.Writer(request(""), false); err != nil || p.Kind != KindOpen {
		t.Fatalf("AUTH=off: %+v %v", p, err)
	}

	// Once a key exists, even the loopback server wants a credential (after
	// the cache's 2 s).
	_, k, err := NewKey("k1", "acme", "ci", nil, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	keys.put(k)
	c.Advance(2 * time.Second)
	if _, err := open.Writer(request(""), false); code(err) != CodeUnauthorized {
		t.Fatalf("loopback with a key, no credential: %v; want unauthorized", err)
	}
	if got := open.Mode(context.Background()); got != "required" {
		t.Fatalf("mode %q", got)
	}
}

func TestKeyLifecycle(t *testing.T) {
	keys := &memKeys{}
	c := clock.NewFake(time.Unix(1e9, 0))
	a := newAuth(t, keys, false, c)
	plain, k, err := NewKey("k1", "acme", "ci", []string{"p1"}, c.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(plain, "sgk_"+k.Prefix+"_") || strings.Contains(k.Hash, plain) || len(plain) != 4+8+1+52 {
		t.Fatalf("key %q, record %+v", plain, k)
	}
	keys.put(k)
	p, err := a.Writer(request(plain), false)
	if err != nil || p.Tenant != "acme" || p.Kind != KindKey || !p.CanUse("p1") || p.CanUse("p2") {
		t.Fatalf("principal %+v, %v", p, err)
	}
	// A wrong secret with a real prefix is refused, and says no more than
	// an unknown key does.
	wrong := plain[:len(plain)-1] + map[bool]string{true: "b", false: "a"}[strings.HasSuffix(plain, "a")]
	_, errWrong := a.Writer(request(wrong), false)
	_, errUnknown := a.Writer(request("sgk_aaaaaaaa_"+strings.Repeat("a", 52)), false)
	if code(errWrong) != CodeUnauthorized || errWrong.Error() != errUnknown.Error() {
		t.Fatalf("wrong: %v; unknown: %v", errWrong, errUnknown)
	}
	// Revoked: refused once the cache has let go (2 s).
	k.RevokedAt = c.Now()
	keys.put(k)
	if _, err := a.Writer(request(plain), false); err != nil {
		t.Fatalf("within the cache window the key still works: %v", err)
	}
	c.Advance(2 * time.Second)
	if _, err := a.Writer(request(plain), false); code(err) != CodeUnauthorized {
		t.Fatalf("revoked key: %v", err)
	}
}

func TestFailuresAreLimitedPerClient(t *testing.T) {
	c := clock.NewFake(time.Unix(1e9, 0))
	a := newAuth(t, &memKeys{}, false, c)
	for i := 0; i < 20; i++ {
		if _, err := a.AdminName(request("not-the-admin-token")); code(err) != CodeWrongAdminToken {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	_, err := a.AdminName(request(adminToken))
	d, ok := err.(*Denied)
	if !ok || d.Code != CodeTooManyFailures || d.RetryAfter <= 0 || d.RetryAfter > time.Minute {
		t.Fatalf("21st attempt, even with the right token: %v", err)
	}
	other := request(adminToken)
	other.RemoteAddr = "198.51.100.1:1"
	if name, err := a.AdminName(other); err != nil || name != "admin" {
		t.Fatalf("another client: %q %v", name, err)
	}
	c.Advance(time.Minute)
	if name, err := a.AdminName(request(adminToken)); err != nil || name != "admin" {
		t.Fatalf("after the window: %q %v", name, err)
	}
}

func TestAdminTokens(t *testing.T) {
	tokens, err := ParseAdminTokens("", "alice=aaaaaaaaaaaaaaaa1, bob=bbbbbbbbbbbbbbbb2")
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := tokens.Match("bbbbbbbbbbbbbbbb2"); !ok || name != "bob" {
		t.Fatalf("match: %q %v", name, ok)
	}
	if _, ok := tokens.Match("bbbbbbbbbbbbbbbb"); ok {
		t.Fatal("a prefix of a token matched")
	}
	for _, bad := range [][2]string{
		{"short", ""},
		{"", "x=short"},
		{"", "noequals"},
		{"", "a=aaaaaaaaaaaaaaaa1,a=aaaaaaaaaaaaaaaa2"},
		{"aaaaaaaaaaaaaaaa1", "b=aaaaaaaaaaaaaaaa1"},
		{"", "a b=aaaaaaaaaaaaaaaa1"},
	} {
		if _, err := ParseAdminTokens(bad[0], bad[1]); err == nil {
			t.Errorf("ParseAdminTokens(%q, %q) accepted", bad[0], bad[1])
		}
	}
	empty, _ := ParseAdminTokens("", "")
	a := New(&memKeys{}, Config{Admin: empty})
	if _, err := a.AdminName(request("whatever-whatever")); code(err) != CodeAdminDisabled {
		t.Fatalf("no tokens: %v", err)
	}
}

func TestPrincipalScope(t *testing.T) {
	p := Principal{Kind: KindKey, Tenant: "acme", Projects: []string{"p1"}}
	if got := p.ProjectKey("p1"); got != "acme/p1" {
		t.Fatalf("ProjectKey %q", got)
	}
	if got := p.IdempotencyKey("a/b"); got != "acme a/b" {
		t.Fatalf("IdempotencyKey %q", got)
	}
	for key, want := range map[string]bool{"acme/p1": true, "acme/p2": false, "other/p1": false, "p1": false} {
		if _, ok := p.Owns(key); ok != want {
			t.Errorf("Owns(%q) = %v", key, ok)
		}
	}
	if got, _ := Open.Owns("p1"); got != "p1" {
		t.Fatalf("open owns %q", got)
	}
	if _, ok := Open.Owns("acme/p1"); ok {
		t.Fatal("an open caller owns a tenant's project")
	}
	admin := Principal{Kind: KindAdmin}
	if got, ok := admin.Owns("acme/p1"); !ok || got != "acme/p1" {
		t.Fatal("an operator sees every project as stored")
	}
}

// jwks serves a JWK Set of one EC key and signs tokens with it.
type jwks struct {
	srv  *httptest.Server
	priv *ecdsa.PrivateKey
}

func newJWKS(t *testing.T) *jwks {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1", ALG: jwkset.AlgES256}})
	if err != nil {
		t.Fatal(err)
	}
	set := jwkset.NewMemoryStorage()
	if err := set.KeyWrite(context.Background(), jwk); err != nil {
		t.Fatal(err)
	}
	body, err := set.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return &jwks{srv: srv, priv: priv}
}

func (j *jwks) sign(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(j.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	j := newJWKS(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := NewJWTVerifier(ctx, JWTConfig{JWKSURL: j.srv.URL, Issuer: "https://id.example", Audience: "scriptgen"})
	if err != nil {
		t.Fatal(err)
	}
	admin, _ := ParseAdminTokens(adminToken, "")
	a := New(&memKeys{}, Config{Admin: admin, JWT: v, Loopback: true})
	exp := time.Now().Add(time.Hour).Unix()
	good := jwt.MapClaims{"iss": "https://id.example", "aud": "scriptgen", "sub": "u1", "exp": exp, "tenant": "acme", "projects": []string{"p1", "p2"}}
	p, err := a.Writer(request(j.sign(t, good)), false)
	if err != nil || p.Kind != KindJWT || p.Tenant != "acme" || !p.CanUse("p2") || p.CanUse("p3") || p.Name != "jwt:u1" {
		t.Fatalf("principal %+v, %v", p, err)
	}
	// With a JWKS configured, no credential is never open, even on loopback.
	if _, err := a.Writer(request(""), false); code(err) != CodeUnauthorized {
		t.Fatalf("no credential: %v", err)
	}
	bad := map[string]jwt.MapClaims{
		"expired":      {"iss": "https://id.example", "aud": "scriptgen", "exp": time.Now().Add(-time.Hour).Unix(), "tenant": "acme"},
		"no exp":       {"iss": "https://id.example", "aud": "scriptgen", "tenant": "acme"},
		"other issuer": {"iss": "https://evil.example", "aud": "scriptgen", "exp": exp, "tenant": "acme"},
		"other aud":    {"iss": "https://id.example", "aud": "else", "exp": exp, "tenant": "acme"},
		"no tenant":    {"iss": "https://id.example", "aud": "scriptgen", "exp": exp},
		"bad tenant":   {"iss": "https://id.example", "aud": "scriptgen", "exp": exp, "tenant": "a/b"},
		"bad projects": {"iss": "https://id.example", "aud": "scriptgen", "exp": exp, "tenant": "acme", "projects": "p1"},
	}
	for name, claims := range bad {
		if _, err := a.Writer(request(j.sign(t, claims)), false); code(err) != CodeUnauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Unsigned and HMAC tokens (signed with the public key as a secret, the
	// classic confusion) are refused.
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, good).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, good).SignedString([]byte("secret"))
	for name, tok := range map[string]string{"none": none, "HS256": hs} {
		if _, err := a.Writer(request(tok), false); code(err) != CodeUnauthorized {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAccessTokenQueryOnlyWhereAllowed(t *testing.T) {
	keys := &memKeys{}
	a := newAuth(t, keys, false, clock.NewFake(time.Unix(1e9, 0)))
	plain, k, _ := NewKey("k1", "acme", "ci", nil, time.Unix(1e9, 0))
	keys.put(k)
	r := httptest.NewRequest("GET", "/api/generation/x/events?access_token="+plain, nil)
	if _, err := a.Writer(r, false); err == nil {
		t.Fatal("a query credential was taken where it is not allowed")
	}
	if p, err := a.Writer(r, true); err != nil || p.Tenant != "acme" {
		t.Fatalf("query credential on an events route: %+v %v", p, err)
	}
}

// downKeys is a key store whose database does not answer.
type downKeys struct{ memKeys }

var errDown = errors.New("failed to connect: FATAL: sorry, too many clients already (SQLSTATE 53300)")

func (*downKeys) HasActiveKeys(context.Context) (bool, error) { return false, errDown }

// A call without a credential, on a server that is open only while no key
// exists, gets the store's error when the store cannot tell (the API answers
// it 503 database_unavailable, to be retried) rather than a 401 "missing
// credential", which a client of an open server does not retry; the server
// still does not open (the mode stays "required").
func TestNoCredentialWhileKeysCannotBeReadIsTheStoresError(t *testing.T) {
	a := newAuth(t, &downKeys{}, true, clock.NewFake(time.Unix(1e9, 0)))
	p, err := a.Writer(request(""), false)
	if !errors.Is(err, errDown) || p.Kind == KindOpen {
		t.Fatalf("no credential while the keys cannot be read: %+v %v, want the store's error", p, err)
	}
	if got := a.Mode(context.Background()); got != "required" {
		t.Fatalf("mode %q while the keys cannot be read, want required (closed)", got)
	}
}
