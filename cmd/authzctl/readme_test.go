package main

// TestREADMEWalkthrough runs the README's "Five minutes with authzctl" as written:
// every `$ authzctl ...` line of its console blocks, in order, against a real authzd
// (embedded SpiceDB on Postgres, a fresh database), and compares each command's output
// with the lines the README shows under it, by shape (ids, tokens and times vary).
// Editing the walkthrough without running it fails here.

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

const walkthroughHeading = "## Five minutes with authzctl"

// A step is one command of the walkthrough and the output the README shows for it.
type step struct {
	line   string   // the command as written, without "$ "
	assign string   // NAME for NAME=$(authzctl ...), else ""
	args   []string // authzctl's arguments, variables not yet expanded
	want   []string // the output lines shown under it
}

func TestREADMEWalkthrough(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	setup, steps, err := parseWalkthrough(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	// The set-up line points authzctl at authzd; here it is the test's authzd.
	for _, v := range []string{"AUTHZ_URL=", "AUTHZ_TOKEN="} {
		if !strings.Contains(setup, v) {
			t.Fatalf("the walkthrough's set-up block does not set %s:\n%s", strings.TrimSuffix(v, "="), setup)
		}
	}
	// The walkthrough shows each of these; a README that drops one drops part of the tour.
	shown := map[string]bool{}
	for _, s := range steps {
		shown[s.args[0]] = true
	}
	for _, cmd := range []string{"partner", "tenant", "role", "member", "check", "audit", "explain"} {
		if !shown[cmd] {
			t.Errorf("the walkthrough has no authzctl %s", cmd)
		}
	}

	a := apptest.MustStart(t, "postgres")
	env := map[string]string{"AUTHZ_URL": a.URL, "AUTHZ_TOKEN": a.AdminToken}
	vars := map[string]string{}
	for _, s := range steps {
		args := make([]string, len(s.args))
		for i, arg := range s.args {
			args[i] = os.Expand(arg, func(k string) string { return vars[k] })
		}
		code, out, errOut := MustRun(t, env, args...)
		wantCode := exitOK
		if len(s.want) > 0 && strings.HasPrefix(s.want[0], "denied") {
			wantCode = exitDenied
		}
		if code != wantCode {
			t.Fatalf("$ %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", s.line, code, wantCode, out, errOut)
		}
		if s.assign != "" {
			vars[s.assign] = strings.TrimSpace(out)
			if vars[s.assign] == "" {
				t.Fatalf("$ %s printed nothing to assign", s.line)
			}
			continue
		}
		got := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if g, w := shapes(got), shapes(s.want); strings.Join(g, "\n") != strings.Join(w, "\n") {
			t.Errorf("$ %s\nprinted (shape):\n%s\nthe README shows (shape):\n%s\nprinted:\n%s", s.line,
				strings.Join(g, "\n"), strings.Join(w, "\n"), out)
		}
	}
}

// parseWalkthrough returns the walkthrough section's set-up block (its sh block) and the
// steps of its console blocks.
func parseWalkthrough(readme string) (setup string, steps []step, err error) {
	start := strings.Index(readme, walkthroughHeading+"\n")
	if start < 0 {
		return "", nil, fmt.Errorf("README.md has no %q section", walkthroughHeading)
	}
	section := readme[start+len(walkthroughHeading):]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	var block string // the fence's language while inside one
	for _, line := range strings.Split(section, "\n") {
		switch {
		case block == "" && strings.HasPrefix(line, "```"):
			block = strings.TrimPrefix(line, "```")
			if block == "" {
				block = "text"
			}
		case block != "" && line == "```":
			block = ""
		case block == "sh":
			setup += line + "\n"
		case block == "console" && strings.HasPrefix(line, "$ "):
			s, err := parseCommand(strings.TrimPrefix(line, "$ "))
			if err != nil {
				return "", nil, err
			}
			steps = append(steps, s)
		case block == "console":
			if len(steps) == 0 {
				return "", nil, fmt.Errorf("console output before any command: %q", line)
			}
			steps[len(steps)-1].want = append(steps[len(steps)-1].want, line)
		}
	}
	if setup == "" || len(steps) == 0 {
		return "", nil, fmt.Errorf("the %q section has no sh set-up block or no console commands", walkthroughHeading)
	}
	return setup, steps, nil
}

var assignment = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=\$\((.*)\)$`)

// parseCommand reads `authzctl ARGS` or `NAME=$(authzctl ARGS)`: words split on blanks,
// "double" and 'single' quotes, $NAME expanded later (not inside single quotes).
func parseCommand(line string) (step, error) {
	s := step{line: line}
	cmd := line
	if m := assignment.FindStringSubmatch(line); m != nil {
		s.assign, cmd = m[1], m[2]
	}
	words, err := splitWords(cmd)
	if err != nil {
		return s, fmt.Errorf("%q: %w", line, err)
	}
	if len(words) < 2 || words[0] != "authzctl" {
		return s, fmt.Errorf("%q: a walkthrough command runs authzctl with arguments", line)
	}
	s.args = words[1:]
	return s, nil
}

func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for _, r := range s {
		switch {
		case quote == '\'' && r == '\'', quote == '"' && r == '"':
			quote = 0
		case quote == '\'':
			// $ inside single quotes stays literal: os.Expand leaves "$$" as "$".
			if r == '$' {
				cur.WriteString("$$")
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case strings.ContainsRune("|&;<>()`\\", r):
			return nil, fmt.Errorf("shell syntax %q is not supported here", r)
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

var (
	uuidRe  = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b`)
	timeRe  = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z`)
	tokenRe = regexp.MustCompile(`[A-Za-z0-9+/_-]{24,}={0,2}`)
	blankRe = regexp.MustCompile(`[ \t]+`)
)

// shapes turns output lines into their shapes: ids, times and zed tokens replaced by
// placeholders, and runs of blanks (table padding) by one space.
func shapes(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		l = uuidRe.ReplaceAllString(l, "<id>")
		l = timeRe.ReplaceAllString(l, "<time>")
		l = tokenRe.ReplaceAllString(l, "<token>")
		out[i] = strings.TrimSpace(blankRe.ReplaceAllString(l, " "))
	}
	return out
}

// TestWalkthroughShapes: the comparison tells a changed answer, a changed table and a
// missing line apart from ids and tokens that merely differ.
func TestWalkthroughShapes(t *testing.T) {
	readme := []string{"allowed\tdecision_id=01a24255-5801-78d9-a488-045572a519f5 checked_at=GiQKGENOOEpJTjRKS09qd2grcXJsWWozR0E9PRIIOGIyMDM3NDc="}
	same := []string{"allowed\tdecision_id=01b00000-0000-7000-8000-000000000001 checked_at=GhUKEzE3OTU3ODY4ODA4ODQ0NTYwMzkSCGM3MjkyM2Q5"}
	if g, w := shapes(same), shapes(readme); g[0] != w[0] {
		t.Errorf("other ids and tokens: %q != %q", g[0], w[0])
	}
	for _, other := range []string{
		"denied\tdecision_id=01b00000-0000-7000-8000-000000000001 checked_at=GhUKEzE3OTU3ODY4ODA4ODQ0NTYwMzkSCGM3MjkyM2Q5",
		"allowed\tdecision_id=01b00000-0000-7000-8000-000000000001",
	} {
		if shapes([]string{other})[0] == shapes(readme)[0] {
			t.Errorf("%q has the README line's shape", other)
		}
	}
	table := shapes([]string{"TIME  MODULE      ACTOR", "2026-12-04T18:33:39.073Z  scaibunker  alice"})
	wide := shapes([]string{"TIME    MODULE  ACTOR", "2026-01-01T00:00:00.1Z scaibunker alice"})
	if strings.Join(table, "\n") != strings.Join(wide, "\n") {
		t.Errorf("table padding changed the shape: %q != %q", table, wide)
	}
}

func TestParseCommand(t *testing.T) {
	s, err := parseCommand(`ZT=$(authzctl resource put acme bunker b-1 --owner alice)`)
	if err != nil || s.assign != "ZT" || strings.Join(s.args, "|") != "resource|put|acme|bunker|b-1|--owner|alice" {
		t.Errorf("assignment: %+v, %v", s, err)
	}
	s, err = parseCommand(`authzctl role put acme ops --name "Bot operators" --consistency-token "$ZT"`)
	if err != nil || strings.Join(s.args, "|") != "role|put|acme|ops|--name|Bot operators|--consistency-token|$ZT" {
		t.Errorf("quotes: %+v, %v", s, err)
	}
	for _, bad := range []string{`curl -s localhost:8080`, `authzctl check a b c | head`, `authzctl role put "x`} {
		if _, err := parseCommand(bad); err == nil {
			t.Errorf("parseCommand(%q) accepted it", bad)
		}
	}
}
