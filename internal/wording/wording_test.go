package wording

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFind(t *testing.T) {
	tests := []struct {
		name, line string
		want       []string // phrases found, in rule order
	}{
		{"OrdinalSession", "Ninth session (2026-11-28, a VM as fast as before)", []string{"Ninth session"}},
		{"OrdinalPass", `runs: docs/performance.md, "tenth pass"`, []string{"tenth pass"}},
		{"NumberedPass", "measured in the 3rd pass", []string{"3rd pass"}},
		{"SameSession", "(`make bench`, same session)", []string{"same session"}},
		{"SessionsVM", "on the seventh session's VM", []string{"seventh session", "session's VM"}},
		{"LetteredRun", "docs: run J on the final commit", []string{"run J"}},
		{"LetteredRange", "Eighth session (runs M-R, 30 s)", []string{"Eighth session", "runs M-R"}},
		{"LetteredDigit", "phase-4 runs A-H2, and run Y3", []string{"runs A-H2", "run Y3"}},
		{"IssueNumber", "// every key on a miss (issue 12, item 4) was measured", []string{"issue 12"}},
		{"IssueHash", "fixes Issue #7", []string{"Issue #7"}},
		{"IssueTestName", "func TestIssue13Chain(t *testing.T) {", []string{"Issue13"}},
		{"Clean", "the decision cache answers from memory while SpiceDB holds the truth", nil},
		{"RunsNTimes", "phase 4's half-peak pair runs N times, interleaved", nil},
		{"PKCS", "PEM PKCS #8 Ed25519 private key", nil},
		{"PostgresSession", "a session-level advisory lock lives as long as the leader's session", nil},
		{"Passes", "this passes only once the server accepts connections", nil},
		{"RunTheTests", "Run the tests, then run make again", nil},
		{"Wrapped", "were run in a second\nsession, so their ids differ", []string{"second\nsession"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, f := range Find(tt.line) {
				got = append(got, f.Phrase)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Find(%q) = %q, want %q", tt.line, got, tt.want)
			}
		})
	}
}

// TestFindLine: a finding names its line, so the failure message points at it.
func TestFindLine(t *testing.T) {
	got := Find("clean\nstill clean\nthe ninth pass found it\n")
	if len(got) != 1 || got[0].Line != 3 || got[0].Rule != "ordinal work period" {
		t.Errorf("Find = %+v, want one ordinal work period on line 3", got)
	}
}

// exempt are files that hold diary wording on purpose: this package's own
// examples of what it finds.
var exempt = map[string]bool{
	"internal/wording/wording.go":      true,
	"internal/wording/wording_test.go": true,
}

// TestTrackedFiles: no tracked text file reads like a lab notebook.
func TestTrackedFiles(t *testing.T) {
	root, files := trackedFiles(t)
	n := 0
	for _, name := range files {
		if exempt[name] || name == "go.sum" || strings.HasSuffix(name, "/go.sum") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			if os.IsNotExist(err) { // deleted in the work tree, not yet in the index
				continue
			}
			t.Fatal(err)
		}
		if bytes.IndexByte(b, 0) >= 0 { // binary
			continue
		}
		n++
		for _, f := range Find(string(b)) {
			t.Errorf("%s:%d: %q reads like a development diary (%s); say what holds, and leave the history to git", name, f.Line, f.Phrase, f.Rule)
		}
	}
	if n < 50 {
		t.Fatalf("scanned only %d text files under %s; is this the repository?", n, root)
	}
}

// trackedFiles lists the repository's tracked files (git ls-files), or, in a
// copy without git, every file under the module root except .git.
func trackedFiles(t *testing.T) (root string, files []string) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s: %v", root, err)
	}
	if out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output(); err == nil {
		for _, f := range strings.Split(string(out), "\x00") {
			if f != "" {
				files = append(files, f)
			}
		}
		return root, files
	}
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, path)
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, files
}
