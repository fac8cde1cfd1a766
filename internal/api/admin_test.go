package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/scriptgen/scriptgen/internal/api"
)

// A second CPU profile or trace while one is being taken is a JSON 409, and
// the first still delivers its profile.
func TestProfilesOneAtATime(t *testing.T) {
	mux := http.NewServeMux()
	api.AdminRoutes(api.AdminConfig{Token: "t"})(mux)
	arrived := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer t")
		return http.DefaultClient.Do(req)
	}
	for _, path := range []string{"/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		first := make(chan *http.Response, 1)
		go func() {
			res, err := get(path)
			if err != nil {
				t.Error(err)
			}
			first <- res
		}()
		<-arrived
		time.Sleep(300 * time.Millisecond) // the first (in the handler already) has taken the profiler by now
		res, err := get(path)
		<-arrived
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

// The admin token: the scheme in any case, the token exactly, one header.
func TestAdminTokenForms(t *testing.T) {
	mux := http.NewServeMux()
	api.AdminRoutes(api.AdminConfig{Token: "t0k"})(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name    string
		headers []string
		want    int
	}{
		{"bearer", []string{"Bearer t0k"}, 200},
		{"scheme in lower case", []string{"bearer t0k"}, 200},
		{"scheme in capitals", []string{"BEARER t0k"}, 200},
		{"missing", nil, 401},
		{"empty", []string{""}, 401},
		{"no scheme", []string{"t0k"}, 401},
		{"other scheme", []string{"Basic t0k"}, 401},
		{"scheme alone", []string{"Bearer"}, 401},
		{"two headers", []string{"Bearer t0k", "Bearer other"}, 401},
		{"wrong token", []string{"Bearer t0K"}, 403},
		{"token with a space before", []string{"Bearer  t0k"}, 403},
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
