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
		time.Sleep(100 * time.Millisecond) // the first has taken the profiler by now
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
