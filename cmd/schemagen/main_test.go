package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scailabs/authzd/schema"
)

func TestRun(t *testing.T) {
	dir := MustCopySources(t)
	out := filepath.Join(dir, schema.GeneratedFile)

	t.Run("CheckFailsWhenMissing", func(t *testing.T) {
		if err := run([]string{"-dir", dir, "-check"}, io.Discard); err == nil {
			t.Fatal("-check passed without authzd.zed")
		}
	})

	t.Run("Writes", func(t *testing.T) {
		if err := run([]string{"-dir", dir}, io.Discard); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		m, err := schema.Embedded()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != m.Schema() {
			t.Error("written schema differs from the embedded model's")
		}
	})

	t.Run("CheckPassesWhenCurrent", func(t *testing.T) {
		if err := run([]string{"-dir", dir, "-check"}, io.Discard); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("CheckFailsWhenStale", func(t *testing.T) {
		manifest := filepath.Join(dir, "modules", "scaiskills.yaml")
		b, err := os.ReadFile(manifest)
		if err != nil {
			t.Fatal(err)
		}
		stale := strings.Replace(string(b), "roles: [super_admin, partner_admin, tenant_admin, tenant_viewer]", "roles: [super_admin, partner_admin, tenant_admin]", 1)
		if stale == string(b) {
			t.Fatal("test manifest edit did not apply")
		}
		if err := os.WriteFile(manifest, []byte(stale), 0o644); err != nil {
			t.Fatal(err)
		}
		err = run([]string{"-dir", dir, "-check"}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "go run ./cmd/schemagen") {
			t.Fatalf("got %v, want a stale error naming the command to run", err)
		}
	})

	t.Run("ErrInvalidManifest", func(t *testing.T) {
		bad := filepath.Join(dir, "modules", "scaidrive.yaml")
		if err := os.WriteFile(bad, []byte("module: scaidrive\ndescription: d\nkeys:\n  - {key: 'scaidrive:Read', description: d, roles: [super_admin]}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		err := run([]string{"-dir", dir}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), `modules/scaidrive.yaml:4: key "scaidrive:Read"`) {
			t.Fatalf("got %v, want an error naming the file and the key", err)
		}
	})
}

// MustCopySources copies core.zed and the manifests of ../../schema into a temporary directory.
func MustCopySources(tb testing.TB) string {
	tb.Helper()
	src := filepath.Join("..", "..", "schema")
	dst := tb.TempDir()
	files, err := filepath.Glob(filepath.Join(src, "modules", "*.yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dst, "modules"), 0o755); err != nil {
		tb.Fatal(err)
	}
	for _, f := range append(files, filepath.Join(src, schema.CoreFile)) {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		rel, err := filepath.Rel(src, f)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, rel), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return dst
}
