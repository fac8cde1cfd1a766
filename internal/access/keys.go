package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// keyPrefixTag starts every API key, so that a key pasted into the wrong place
// (a log, a ticket) is recognised as one, and a JWT is never taken for a key.
const keyPrefixTag = "sgk_"

// An API key reads sgk_<8 chars of prefix>_<52 chars of secret>: the prefix
// is shown in lists and logs for support, the secret (256 bits) only once,
// when the key is created. The store keeps the SHA-256 of the whole key: a
// key of that entropy needs no slow hash to resist guessing.
var (
	keyEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)
	keyPattern  = regexp.MustCompile(`^sgk_([a-z2-7]{8})_[a-z2-7]{52}$`)
	tenantRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Key is an API key as the store keeps it: never the key itself.
type Key struct {
	ID     string
	Prefix string
	// Hash is the hex SHA-256 of the whole key.
	Hash   string
	Tenant string
	// Projects, when not nil, are the only projects of Tenant the key may use.
	Projects  []string
	Name      string
	CreatedAt time.Time
	// RevokedAt is zero while the key is in force.
	RevokedAt time.Time
}

// Active reports whether the key is in force.
func (k Key) Active() bool { return k.RevokedAt.IsZero() }

// Principal is the writer a key stands for.
func (k Key) Principal() Principal {
	return Principal{
		Kind:     KindKey,
		Tenant:   k.Tenant,
		Projects: k.Projects,
		Name:     k.Name + " (" + k.Prefix + ")",
	}
}

// ErrNoKey is what a key store answers for a prefix it does not know.
var ErrNoKey = errors.New("no such API key")

// NewKey makes a key for tenant and returns it with the record to store. The
// plain key exists only in the return value.
func NewKey(id, tenant, name string, projects []string, now time.Time) (plain string, k Key, err error) {
	if err := ValidateTenant(tenant); err != nil {
		return "", Key{}, err
	}
	if name == "" || len(name) > 100 {
		return "", Key{}, errors.New("a key's name must be 1-100 characters")
	}
	buf := make([]byte, 5+32)
	if _, err := rand.Read(buf); err != nil {
		return "", Key{}, fmt.Errorf("random key: %w", err)
	}
	prefix := keyEncoding.EncodeToString(buf[:5])
	plain = keyPrefixTag + prefix + "_" + keyEncoding.EncodeToString(buf[5:])
	k = Key{
		ID:        id,
		Prefix:    prefix,
		Hash:      HashKey(plain),
		Tenant:    tenant,
		Projects:  projects,
		Name:      name,
		CreatedAt: now,
	}
	return plain, k, nil
}

// HashKey is the hex SHA-256 of a key.
func HashKey(plain string) string {
	sum := sha256.Sum256([]byte(plain))
	return hex.EncodeToString(sum[:])
}

// KeyPrefix returns the prefix of a string shaped like an API key.
func KeyPrefix(s string) (string, bool) {
	m := keyPattern.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// LooksLikeKey reports whether a credential is meant as an API key (even a
// malformed one), rather than a JWT or an admin token.
func LooksLikeKey(s string) bool { return strings.HasPrefix(s, keyPrefixTag) }

// ValidateTenant checks a tenant id: 1-64 letters, digits, '.', '_' or '-',
// starting with a letter or digit (the rule of project ids, so neither holds
// the separator of qualified keys).
func ValidateTenant(tenant string) error {
	if !tenantRE.MatchString(tenant) {
		return fmt.Errorf("tenant %q: must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", tenant)
	}
	return nil
}

// KeyInfo is a key as `scriptgen keys --json` prints it and the admin API
// answers: never its hash, and the key itself only in the answer that made
// it.
type KeyInfo struct {
	ID        string     `json:"id"`
	Prefix    string     `json:"prefix"`
	Tenant    string     `json:"tenant"`
	Projects  []string   `json:"projects"`
	Name      string     `json:"name"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
	Key       string     `json:"key,omitempty"`
}

// Info is k as KeyInfo, with plain when it was just made.
func (k Key) Info(plain string) KeyInfo {
	out := KeyInfo{
		ID:        k.ID,
		Prefix:    k.Prefix,
		Tenant:    k.Tenant,
		Projects:  k.Projects,
		Name:      k.Name,
		CreatedAt: k.CreatedAt,
		Key:       plain,
	}
	if !k.Active() {
		out.RevokedAt = &k.RevokedAt
	}
	return out
}
