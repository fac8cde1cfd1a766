package version

import (
	"runtime/debug"
	"testing"
)

func info(mainVersion string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/scriptgen/scriptgen", Version: mainVersion}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

const commit = "c66a339f0e1d2b3c4d5e6f708192a3b4c5d6e7f8"

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		name     string
		override string
		bi       *debug.BuildInfo
		want     string
	}{
		{"no build information", "", nil, Fallback},
		{"the -X override wins over everything", "v9.9.9", info("v1.2.3", "vcs.revision", commit), "v9.9.9"},
		{"the -X override without build information", "v9.9.9", nil, "v9.9.9"},
		{"a release installed with go install …@v1.2.3", "", info("v1.2.3"), "v1.2.3"},
		{"the module version wins over the commit", "", info("v1.2.3", "vcs.revision", commit, "vcs.modified", "false"), "v1.2.3"},
		{"a pseudo-version of a modified clone, as Go stamps it", "",
			info("v0.0.0-20261206210441-c66a339f0e1d+dirty", "vcs.revision", commit, "vcs.modified", "true"),
			"v0.0.0-20261206210441-c66a339f0e1d+dirty"},
		{"(devel): the commit, cut to 12 characters", "", info("(devel)", "vcs.revision", commit, "vcs.modified", "false"), "c66a339f0e1d"},
		{"(devel) and modified: the commit marked dirty", "", info("(devel)", "vcs.revision", commit, "vcs.modified", "true"), "c66a339f0e1d-dirty"},
		{"no module version: the commit", "", info("", "vcs.revision", commit), "c66a339f0e1d"},
		{"a short revision is kept whole", "", info("(devel)", "vcs.revision", "abc123", "vcs.modified", "true"), "abc123-dirty"},
		{"modified without a revision says nothing", "", info("(devel)", "vcs.modified", "true"), Fallback},
		{"(devel) without VCS information", "", info("(devel)", "-buildmode", "exe"), Fallback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Choose(tc.override, tc.bi); got != tc.want {
				t.Errorf("Choose(%q, …) = %q, want %q", tc.override, got, tc.want)
			}
		})
	}
}

// String is Choose over this binary's own build information: never empty.
func TestString(t *testing.T) {
	bi, _ := debug.ReadBuildInfo()
	if got, want := String(), Choose(Version, bi); got != want || got == "" {
		t.Errorf("String() = %q, want %q (not empty)", got, want)
	}
}
