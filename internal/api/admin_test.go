package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
	"github.com/scriptgen/scriptgen/internal/testenv/contract"
)

// A second CPU profile or trace while one is being taken is a JSON 409, and
// the first still delivers its profile.
func TestProfilesOneAtATime(t *testing.T) {
	srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{AdminToken: testAdminToken})))
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		return http.DefaultClient.Do(req)
	}
	for path, profiler := range map[string]string{
		"/debug/pprof/profile?seconds=1": "net/http/pprof.Profile(",
		"/debug/pprof/trace?seconds=1":   "net/http/pprof.Trace(",
	} {
		first := make(chan *http.Response, 1)
		go func() {
			res, err := get(path)
			if err != nil {
				t.Error(err)
			}
			first <- res
		}()
		// The first request holds the profiler once its handler runs pprof's.
		waitUntil(t, 5*time.Second, "the first request to take the profiler", func() bool { return goroutineIn(profiler) })
		res, err := get(path)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error struct{ Code string } `json:"error"`
		}
		json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if res.StatusCode != http.StatusConflict || body.Error.Code != "profile_busy" {
			t.Fatalf("%s while another runs: %d %+v, want 409 profile_busy", path, res.StatusCode, body)
		}
		res = <-first
		if res == nil {
			t.FailNow()
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.ContentLength == 0 {
			t.Fatalf("%s: the first request got %d", path, res.StatusCode)
		}
	}
}

// goroutineIn reports whether a goroutine runs the function whose name
// (package-qualified, with its opening parenthesis) is fn.
func goroutineIn(fn string) bool {
	buf := make([]byte, 1<<20)
	return strings.Contains(string(buf[:runtime.Stack(buf, true)]), fn)
}

// testAdminToken is long enough for access.ParseAdminTokens.
const testAdminToken = "test-admin-token-0123"

// The admin token: the scheme in any case, the token exactly, one header.
func TestAdminTokenForms(t *testing.T) {
	srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{AdminToken: "t0k-0123456789abcdef"})))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"bearer", []string{"Bearer t0k-0123456789abcdef"}, 200},
		{"scheme in lower case", []string{"bearer t0k-0123456789abcdef"}, 200},
		{"scheme in capitals", []string{"BEARER t0k-0123456789abcdef"}, 200},
		{"missing", nil, 401},
		{"empty", []string{""}, 401},
		{"no scheme", []string{"t0k-0123456789abcdef"}, 401},
		{"other scheme", []string{"Basic t0k-0123456789abcdef"}, 401},
		{"scheme alone", []string{"Bearer"}, 401},
		{"two headers", []string{"Bearer t0k-0123456789abcdef", "Bearer other"}, 401},
		{"wrong token", []string{"Bearer T0K-0123456789abcdef"}, 403},
		{"token with a space before", []string{"Bearer  t0k-0123456789abcdef"}, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/debug/pprof/", nil)
			for _, h := range tc.headers {
				req.Header.Add("Authorization", h)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != tc.want {
				t.Fatalf("Authorization %q: %d, want %d", tc.headers, res.StatusCode, tc.want)
			}
		})
	}
}

// Without a token the admin API is off: every admin route answers 403.
func TestAdminAPIOffWithoutToken(t *testing.T) {
	srv := httptest.NewServer(contract.Handler(t, api.New(api.Config{})))
	t.Cleanup(srv.Close)
	req, _ := http.NewRequest("POST", srv.URL+"/api/admin/rollback", strings.NewReader(`{"reason":"x"}`))
	req.Header.Set("Authorization", "Bearer anything")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Error struct{ Code string } `json:"error"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	res.Body.Close()
	if res.StatusCode != http.StatusForbidden || body.Error.Code != "admin_disabled" {
		t.Fatalf("admin call without ADMIN_TOKEN: %d %+v, want 403 admin_disabled", res.StatusCode, body)
	}
}
