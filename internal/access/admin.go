package access

import (
	"crypto/subtle"
	"fmt"
	"sort"
	"strings"
)

// MinAdminTokenLength is the shortest admin token accepted: an operator's
// token guards rollbacks and keys, and 16 random characters cannot be guessed
// through a limit of 20 attempts a minute.
const MinAdminTokenLength = 16

// AdminTokens are the operators' named tokens.
type AdminTokens struct {
	names  []string
	tokens []string
}

// ParseAdminTokens reads ADMIN_TOKEN (named "admin") and ADMIN_TOKENS
// ("name=token,name=token"). Every token must be at least
// MinAdminTokenLength long, and names and tokens unique.
func ParseAdminTokens(single, list string) (AdminTokens, error) {
	var t AdminTokens
	add := func(name, token string) error {
		if name == "" || strings.ContainsAny(name, " ,=@") {
			return fmt.Errorf("admin token name %q: must be non-empty without spaces, ',', '=' or '@'", name)
		}
		if len(token) < MinAdminTokenLength {
			return fmt.Errorf("admin token %q is %d characters; at least %d are required (e.g. `openssl rand -hex 24`)", name, len(token), MinAdminTokenLength)
		}
		for i := range t.names {
			if t.names[i] == name {
				return fmt.Errorf("admin token name %q is given twice", name)
			}
			if t.tokens[i] == token {
				return fmt.Errorf("admin tokens %q and %q are the same", t.names[i], name)
			}
		}
		t.names = append(t.names, name)
		t.tokens = append(t.tokens, token)
		return nil
	}
	if single != "" {
		if err := add("admin", single); err != nil {
			return AdminTokens{}, err
		}
	}
	for _, item := range strings.Split(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, token, ok := strings.Cut(item, "=")
		if !ok {
			return AdminTokens{}, fmt.Errorf("ADMIN_TOKENS item %q: want name=token", name)
		}
		if err := add(strings.TrimSpace(name), strings.TrimSpace(token)); err != nil {
			return AdminTokens{}, err
		}
	}
	return t, nil
}

// Empty reports whether no admin token is configured (the admin API is off).
func (t AdminTokens) Empty() bool { return len(t.tokens) == 0 }

// Names lists the tokens' names, sorted.
func (t AdminTokens) Names() []string {
	names := append([]string(nil), t.names...)
	sort.Strings(names)
	return names
}

// Match returns the name of the token given, comparing every token in
// constant time so that the answer's timing tells nothing.
func (t AdminTokens) Match(given string) (string, bool) {
	found := -1
	for i, tok := range t.tokens {
		if subtle.ConstantTimeCompare([]byte(given), []byte(tok)) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.names[found], true
}
