// Package version tells which build of scriptgen is running: `scriptgen
// version`, and the "version" field of GET /health and of GET
// /api/generation/system-info.
package version

import "runtime/debug"

// Version, when set at build time, wins over the build information:
//
//	go build -ldflags "-X github.com/scriptgen/scriptgen/internal/version.Version=v1.2.3" ./cmd/scriptgen
var Version = ""

// Fallback is the version of a binary that carries no build information to
// tell: built with -buildvcs=false outside a module version, or by `go run`.
const Fallback = "dev"

// String returns the version of this binary (see Choose).
func String() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		bi = nil
	}
	return Choose(Version, bi)
}

// Choose picks a version from an -ldflags -X override and the binary's build
// information (nil when it has none), in this order:
//
//  1. the override, when set;
//  2. the main module's version, unless it is "(devel)": a release installed
//     with `go install github.com/scriptgen/scriptgen/cmd/scriptgen@v1.2.3`, or
//     the pseudo-version that Go (1.24 and later) derives from the commit when
//     it builds in a clone, such as v0.0.0-20261206210441-c66a339f0e1d+dirty;
//  3. the VCS commit (vcs.revision) cut to 12 characters, with "-dirty" when
//     the work tree had changes (vcs.modified=true);
//  4. Fallback.
func Choose(override string, bi *debug.BuildInfo) string {
	if override != "" {
		return override
	}
	if bi == nil {
		return Fallback
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision string
	var modified bool
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if revision == "" {
		return Fallback
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified {
		revision += "-dirty"
	}
	return revision
}
