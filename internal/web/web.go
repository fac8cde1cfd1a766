// Package web is scriptgen's user interface, embedded in the binary so that
// `go build` needs nothing else: a writer's page at / (submit an episode,
// watch its progress live, read the script, browse a project's episodes) and
// an operator's page at /operator (worker mode and rollout, queue, triggers,
// rollback history and the rollback button). Plain HTML, CSS and JavaScript,
// no build step; the pages talk only to the public and admin HTTP APIs. The
// service routes them from api's route table.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Pages serves the pages and their assets.
type Pages struct {
	files  fs.FS
	assets http.Handler
}

// NewPages serves the pages embedded in the binary.
func NewPages() *Pages {
	sub, _ := fs.Sub(static, "static")
	return &Pages{files: sub, assets: http.StripPrefix("/static/", http.FileServerFS(sub))}
}

// Writer serves the writer's page (GET /).
func (p *Pages) Writer(w http.ResponseWriter, r *http.Request) { p.page(w, "index.html") }

// Operator serves the operator's page (GET /operator).
func (p *Pages) Operator(w http.ResponseWriter, r *http.Request) { p.page(w, "operator.html") }

// Static serves the pages' scripts and style sheet (GET /static/).
func (p *Pages) Static(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	p.assets.ServeHTTP(w, r)
}

func (p *Pages) page(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(p.files, name)
	if err != nil {
		http.Error(w, "page missing from this build", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(b)
}
