package main

import (
	"bytes"
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
	"time"
)

// MustRun runs authzctl in-process with env as its environment.
func MustRun(tb testing.TB, env map[string]string, args ...string) (code int, stdout, stderr string) {
	tb.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// TestHelp asks every command for --help: each answers on stdout with exit 0.
func TestHelp(t *testing.T) {
	var walk func(cmd *command, path []string)
	walk = func(cmd *command, path []string) {
		t.Run(strings.Join(append(path, cmd.name), "_"), func(t *testing.T) {
			args := append(slices.Clone(path[min(1, len(path)):]), cmd.name, "--help")
			if len(path) == 0 {
				args = []string{"--help"}
			}
			code, out, errOut := MustRun(t, nil, args...)
			if code != exitOK {
				t.Errorf("authzctl %v: exit %d, want 0; stderr %s", args, code, errOut)
			}
			if !strings.HasPrefix(out, "Usage: ") || !strings.Contains(out, "Exit status:") {
				t.Errorf("authzctl %v: stdout does not hold the usage:\n%s", args, out)
			}
		})
		for _, sub := range cmd.subs {
			walk(sub, append(slices.Clone(path), cmd.name))
		}
	}
	walk(root(), nil)

	t.Run("HelpCommand", func(t *testing.T) {
		code, out, _ := MustRun(t, nil, "help", "role", "put")
		if code != exitOK || !strings.HasPrefix(out, "Usage: authzctl role put <tenant_id> <role_id>") {
			t.Errorf("exit %d, stdout:\n%s", code, out)
		}
	})
}

func TestUsageErrors(t *testing.T) {
	env := map[string]string{"AUTHZ_URL": "http://127.0.0.1:1", "AUTHZ_TOKEN": "x"}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // in stderr
	}{
		{"NoCommand", env, nil, "Usage: authzctl <command>"},
		{"UnknownCommand", env, []string{"nope"}, `unknown command "nope"`},
		{"UnknownSubcommand", env, []string{"tenant", "nope"}, `unknown command "nope"`},
		{"GroupWithoutSub", env, []string{"admin"}, "Usage: authzctl admin <command>"},
		{"MissingArgs", env, []string{"tenant", "put"}, "want 1 argument(s), got 0"},
		{"ExtraArgs", env, []string{"partner", "put", "a", "b"}, "want 1 argument(s), got 2"},
		{"UnknownFlag", env, []string{"partner", "put", "--nope", "a"}, "flag provided but not defined: -nope"},
		{"NoURL", map[string]string{"AUTHZ_TOKEN": "x"}, []string{"partner", "put", "a"}, "no authzd URL"},
		{"NoToken", map[string]string{"AUTHZ_URL": "http://x"}, []string{"partner", "put", "a"}, "no API token"},
		{"BadURL", map[string]string{"AUTHZ_URL": "x", "AUTHZ_TOKEN": "x"}, []string{"partner", "put", "a"}, "base URL"},
		{"TenantNoPartner", env, []string{"tenant", "put", "t1"}, "--partner is required"},
		{"ResourceNoOwner", env, []string{"resource", "put", "t1", "bunker", "b1"}, "--owner is required"},
		{"BadResource", env, []string{"check", "t1", "alice", "m:k", "--resource", "bunker"}, "must be type:id"},
		{"BadDecision", env, []string{"audit", "--decision", "maybe"}, "--decision must be allowed or denied"},
		{"BadSince", env, []string{"audit", "--since", "yesterday"}, `--since "yesterday" is not a date`},
		{"NegativeLimit", env, []string{"audit", "--limit", "-1"}, "--limit must be 0 or more"},
		{"TokenNoScope", env, []string{"token", "create", "--name", "n"}, "at least one --scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := MustRun(t, tt.env, tt.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d; stderr %s", code, exitUsage, errOut)
			}
			if !strings.Contains(errOut, tt.want) {
				t.Errorf("stderr does not contain %q:\n%s", tt.want, errOut)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	env := map[string]string{"AUTHZ_URL": "http://127.0.0.1:1", "AUTHZ_TOKEN": "x"}
	code, _, errOut := MustRun(t, env, "--timeout", "2s", "check", "t1", "alice", "scaibunker:create")
	if code != exitError || !strings.Contains(errOut, "connection refused") {
		t.Errorf("exit %d, stderr %q; want %d and the network error", code, errOut, exitError)
	}
}

func TestParseInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantX   string
	}{
		{[]string{"a", "b"}, []string{"a", "b"}, ""},
		{[]string{"--x", "1", "a", "b"}, []string{"a", "b"}, "1"},
		{[]string{"a", "--x", "1", "b"}, []string{"a", "b"}, "1"},
		{[]string{"a", "b", "--x=1"}, []string{"a", "b"}, "1"},
		{[]string{"a", "--", "--x", "b"}, []string{"a", "--x", "b"}, ""},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		x := fs.String("x", "", "")
		pos, err := parseInterspersed(fs, tt.args)
		if err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if !slices.Equal(pos, tt.wantPos) || *x != tt.wantX {
			t.Errorf("%v: positional %v, x %q; want %v, %q", tt.args, pos, *x, tt.wantPos, tt.wantX)
		}
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 5, 18, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", time.Time{}, true},
		{"2026-05-01", time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{"2026-05-01T10:30:00Z", time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC), true},
		{"2026-05-01T10:30:00+02:00", time.Date(2026, 5, 1, 8, 30, 0, 0, time.UTC), true},
		{"24h", now.Add(-24 * time.Hour), true},
		{"-1h", time.Time{}, false},
		{"May 1", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseWhen("since", tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}
