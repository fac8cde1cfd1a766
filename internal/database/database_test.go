package database

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scriptgen/scriptgen/internal/clock"
	"github.com/scriptgen/scriptgen/internal/store"
	"github.com/scriptgen/scriptgen/internal/testenv"
)

func TestParse(t *testing.T) {
	tests := []struct {
		url        string
		isPostgres bool
		path       string
		wantErr    string
	}{
		{url: "postgres://u@h/db", isPostgres: true},
		{url: "postgresql://u@h/db", isPostgres: true},
		{url: "sqlite:./data/x.db", path: "./data/x.db"},
		{url: "sqlite:///tmp/x.db", path: "/tmp/x.db"},
		{url: "file:x.db", path: "x.db"},
		{url: "file:///tmp/x.db", path: "/tmp/x.db"},
		{url: "/tmp/x.db", path: "/tmp/x.db"},
		{url: "x.db", path: "x.db"},
		{url: "mysql://x", wantErr: `scheme "mysql" is not supported`},
		{url: "redis://u:secret@h/0", wantErr: `scheme "redis" is not supported`},
		{url: "http://h/x.db", wantErr: `scheme "http" is not supported`},
		{url: "sqlite:", wantErr: "names no SQLite file"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			isPostgres, path, err := parse(tt.url)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parse(%q) error %v, want %q", tt.url, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the URL's password: %v", err)
				}
				return
			}
			if err != nil || isPostgres != tt.isPostgres || path != tt.path {
				t.Fatalf("parse(%q) = %v, %q, %v; want %v, %q", tt.url, isPostgres, path, err, tt.isPostgres, tt.path)
			}
		})
	}
}

func TestUnknownSchemeCreatesNothing(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, open := range []func(context.Context, string, clock.Clock) (store.Store, error){Open, OpenExisting} {
		if _, err := open(t.Context(), "mysql://x", clock.Real{}); err == nil {
			t.Fatal("mysql://x opened")
		}
	}
	if entries, _ := os.ReadDir("."); len(entries) > 0 {
		t.Fatalf("an unknown scheme left %v behind", entries[0].Name())
	}
}

func TestOpenExistingRefusesAMissingSQLiteFile(t *testing.T) {
	dir := t.TempDir()
	for _, url := range []string{
		filepath.Join(dir, "x.db"),
		"sqlite:" + filepath.Join(dir, "missing", "x.db"),
		"file:" + filepath.Join(dir, "missing", "x.db"),
	} {
		st, err := OpenExisting(t.Context(), url, clock.Real{})
		if !errors.Is(err, ErrNoDatabase) || !strings.Contains(err.Error(), "no database at "+dir) {
			if st != nil {
				st.Close()
			}
			t.Fatalf("OpenExisting(%q) error %v, want %v", url, err, ErrNoDatabase)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Fatalf("OpenExisting created %s", entries[0].Name())
	}
}

func TestOpenCreatesWhatOpenExistingThenOpens(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "data", "x.db")
	st, err := Open(t.Context(), url, clock.Real{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	st.Close()
	st, err = OpenExisting(t.Context(), url, clock.Real{})
	if err != nil {
		t.Fatalf("OpenExisting of the file Open created: %v", err)
	}
	st.Close()
}

func TestOpenExistingOpensPostgres(t *testing.T) {
	st, err := OpenExisting(t.Context(), testenv.PostgresURL(t), clock.Real{})
	if err != nil {
		t.Fatalf("OpenExisting(postgres): %v", err)
	}
	st.Close()
}
