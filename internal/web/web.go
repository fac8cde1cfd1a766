// Package web is scriptgen's user interface, embedded in the binary so that
// `go build` needs nothing else: a writer's page at / (submit an episode,
// watch its progress live, read the script, browse a project's episodes) and
// an operator's page at /operator (worker mode and rollout, queue, triggers,
// rollback history and the rollback button). Plain HTML, CSS and JavaScript,
// no build step; the pages talk only to the public and admin HTTP APIs.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Routes registers the pages and their assets on mux.
func Routes(mux *http.ServeMux) {
	sub, _ := fs.Sub(static, "static")
	files := http.FileServerFS(sub)
	page := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := fs.ReadFile(sub, name)
			if err != nil {
				http.Error(w, "page missing from this build", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			w.Write(b)
		}
	}
	mux.HandleFunc("GET /{$}", page("index.html"))
	mux.HandleFunc("GET /operator", page("operator.html"))
	mux.Handle("GET /static/", http.StripPrefix("/static/", withCacheControl(files)))
}

func withCacheControl(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
