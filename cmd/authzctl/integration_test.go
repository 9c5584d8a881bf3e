package main

// These tests run authzctl in-process against a real authzd: the app's own
// constructor with embedded SpiceDB (memory datastore) and a fresh Postgres database
// per test. They skip when no Postgres answers (see internal/pgtest).

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/scailabs/authzd/cmd/authzd/app/apptest"
)

func TestIntegration(t *testing.T) {
	a := apptest.MustStart(t, "memory")
	url, admin := a.URL, a.AdminToken
	env := map[string]string{"AUTHZ_URL": url, "AUTHZ_TOKEN": admin, "AUTHZ_ACTOR": "ops-anna"}

	ok := func(t *testing.T, args ...string) string { t.Helper(); return MustOK(t, env, args...) }
	fails := func(t *testing.T, code int, want string, args ...string) {
		t.Helper()
		MustFail(t, env, code, want, args...)
	}

	// Provision a tenant the way docs/client.md shows.
	ok(t, "partner", "put", "acme")
	if zt := strings.TrimSpace(ok(t, "tenant", "put", "t1", "--partner", "acme")); zt == "" {
		t.Fatal("tenant put printed no zed token")
	}
	ok(t, "member", "add", "t1", "tenant_admin", "alice")
	ok(t, "role", "put", "t1", "operators", "--name", "Bot operators",
		"--permission", "scaibunker:create,scaibunker:execute", "--permission", "scaibunker:files")
	ok(t, "member", "add", "t1", "operators", "sa:ci-bot")
	zt := strings.TrimSpace(ok(t, "resource", "put", "t1", "bunker", "b1", "--owner", "sa:ci-bot"))
	ok(t, "admin", "super", "add", "root")
	// Checks without a consistency token may be answered from before the writes above
	// (minimize_latency); the last write's token makes every check below see them all.
	last := strings.TrimSpace(ok(t, "admin", "partner", "add", "acme", "pat"))

	t.Run("Check", func(t *testing.T) {
		tests := []struct {
			args []string
			code int
			word string
		}{
			{[]string{"check", "t1", "alice", "scaibunker:admin:tenant", "--consistency-token", last}, exitOK, "allowed"},
			{[]string{"check", "t1", "alice", "scaibunker:admin:platform", "--consistency-token", last}, exitDenied, "denied"},
			{[]string{"check", "t1", "root", "scaibunker:admin:platform", "--consistency-token", last}, exitOK, "allowed"},
			{[]string{"check", "t1", "pat", "scaibunker:admin:platform", "--consistency-token", last}, exitOK, "allowed"},
			{[]string{"check", "t1", "sa:ci-bot", "scaibunker:execute", "--resource", "bunker:b1", "--consistency-token", zt, "--action", "bunker.exec"}, exitOK, "allowed"},
			{[]string{"check", "t1", "alice", "scaibunker:execute", "--resource", "bunker:b1", "--consistency-token", zt}, exitDenied, "denied"},
			{[]string{"check", "t1", "mallory", "scaibunker:create", "--consistency-token", last}, exitDenied, "denied"},
		}
		for _, tt := range tests {
			code, out, errOut := MustRun(t, env, tt.args...)
			if code != tt.code || !strings.HasPrefix(out, tt.word) {
				t.Errorf("authzctl %s: exit %d, stdout %q, stderr %q; want %d, %q", strings.Join(tt.args, " "), code, out, errOut, tt.code, tt.word)
			}
		}
		code, out, _ := MustRun(t, env, "check", "t1", "mallory", "scaibunker:create", "--json")
		var d struct {
			Allowed    *bool  `json:"allowed"`
			DecisionID string `json:"decision_id"`
		}
		if code != exitDenied || json.Unmarshal([]byte(out), &d) != nil || d.Allowed == nil || *d.Allowed || d.DecisionID == "" {
			t.Errorf("check --json: exit %d, stdout %s", code, out)
		}
	})

	t.Run("Explain", func(t *testing.T) {
		code, out, errOut := MustRun(t, env, "explain", "t1", "sa:ci-bot", "scaibunker:execute", "--resource", "bunker:b1", "--consistency-token", last)
		for _, want := range []string{"allowed\tdecision_id=", "Why:", `is a member of the custom role "Bot operators" (id operators) of tenant t1, which grants scaibunker:execute.`,
			"service account ci-bot owns bunker b1", "SpiceDB trace:", "bunker:t1/b1#scaibunker__execute"} {
			if code != exitOK || !strings.Contains(out, want) {
				t.Errorf("explain (allowed): exit %d, stdout lacks %q:\n%s%s", code, want, out, errOut)
			}
		}
		code, out, errOut = MustRun(t, env, "explain", "t1", "alice", "scaibunker:execute", "--resource", "bunker:b1", "--consistency-token", last)
		for _, want := range []string{"denied\tdecision_id=", "alice is not the owner of bunker b1 (the owner is service account ci-bot)",
			"alice holds the built-in role tenant_admin in tenant t1, which grants scaibunker:execute."} {
			if code != exitDenied || !strings.Contains(out, want) {
				t.Errorf("explain (denied): exit %d, stdout lacks %q:\n%s%s", code, want, out, errOut)
			}
		}
		code, out, _ = MustRun(t, env, "explain", "t1", "mallory", "scaibunker:create", "--json")
		var x struct {
			Allowed *bool    `json:"allowed"`
			Reasons []string `json:"reasons"`
			Trace   *struct {
				Object string `json:"object"`
			} `json:"trace"`
		}
		if code != exitDenied || json.Unmarshal([]byte(out), &x) != nil || x.Allowed == nil || *x.Allowed || len(x.Reasons) == 0 || x.Trace == nil || x.Trace.Object != "tenant:t1" {
			t.Errorf("explain --json: exit %d, stdout %s", code, out)
		}
		fails(t, exitUsage, "--resource", "explain", "t1", "alice", "scaibunker:execute", "--resource", "b1")
	})

	t.Run("Read", func(t *testing.T) {
		if got, want := ok(t, "permissions", "t1", "sa:ci-bot", "--consistency-token", zt),
			"scaibunker:create\nscaibunker:execute\nscaibunker:files\n"; got != want {
			t.Errorf("permissions = %q, want %q", got, want)
		}
		if got := ok(t, "role", "get", "t1", "operators"); !strings.Contains(got, "scaibunker:create, scaibunker:execute, scaibunker:files") {
			t.Errorf("role get:\n%s", got)
		}
		keys := ok(t, "keys", "--module", "scaiskills")
		if !strings.HasPrefix(keys, "KEY") || !strings.Contains(keys, "scaiskills:grant") || strings.Contains(keys, "scaibunker:") {
			t.Errorf("keys --module scaiskills:\n%s", keys)
		}
	})

	t.Run("Errors", func(t *testing.T) {
		fails(t, exitError, "409 conflict", "partner", "delete", "acme")
		fails(t, exitError, "404 not_found", "tenant", "put", "t2", "--partner", "nope")
		fails(t, exitError, "404 not_found", "role", "get", "t1", "nope")
		fails(t, exitError, "400 invalid", "check", "t1", "alice", "scaibunker:fly")
		fails(t, exitError, "400 invalid", "role", "put", "t1", "tenant_user", "--permission", "scaibunker:create")
		fails(t, exitError, "401 unauthorized", "--token", "wrong", "keys")
	})

	t.Run("Audit", func(t *testing.T) {
		table := ok(t, "audit", "--module", "scaibunker", "--tenant", "t1", "--since", "1h", "--limit", "0")
		lines := strings.Split(strings.TrimSpace(table), "\n")
		if !strings.HasPrefix(lines[0], "TIME") || len(lines) < 8 {
			t.Fatalf("audit table:\n%s", table)
		}
		if !strings.Contains(table, "bunker.exec") || !strings.Contains(table, "bunker:b1") {
			t.Errorf("audit table lacks the bunker.exec check on bunker:b1:\n%s", table)
		}

		// --json prints one event per line; --limit 3 stops after three, across pages.
		out := ok(t, "audit", "--module", "scaibunker", "--decision", "denied", "--limit", "3", "--json")
		n := 0
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var ev struct{ Decision, Module string }
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Fatalf("line %q: %v", sc.Text(), err)
			}
			if ev.Decision != "denied" || ev.Module != "scaibunker" {
				t.Errorf("event %s does not match the filters", sc.Text())
			}
			n++
		}
		if n != 3 {
			t.Errorf("%d events with --limit 3", n)
		}

		// Provisioning is audited under module authzd with the actor from AUTHZ_ACTOR.
		prov := ok(t, "audit", "--module", "authzd", "--actor", "ops-anna", "--limit", "0")
		for _, action := range []string{"partner.put", "tenant.put", "role.put", "member.add", "resource.put", "super_admin.grant", "partner_admin.grant"} {
			if !strings.Contains(prov, action) {
				t.Errorf("no %s in the provisioning audit:\n%s", action, prov)
			}
		}
		if got := ok(t, "audit", "--module", "scaibunker", "--until", "2000-01-01"); strings.Count(got, "\n") != 1 {
			t.Errorf("audit before 2000 printed rows:\n%s", got)
		}
	})

	t.Run("Tokens", func(t *testing.T) {
		out := ok(t, "token", "create", "--name", "scaibunker-prod", "--scope", "check", "--json")
		var tok struct{ ID, Token string }
		if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.ID == "" || tok.Token == "" {
			t.Fatalf("token create --json: %s (%v)", out, err)
		}
		modEnv := map[string]string{"AUTHZ_URL": url, "AUTHZ_TOKEN": tok.Token}
		if code, _, errOut := MustRun(t, modEnv, "check", "t1", "alice", "scaibunker:create"); code != exitOK {
			t.Errorf("check with the new token: exit %d, %s", code, errOut)
		}
		if code, _, errOut := MustRun(t, modEnv, "partner", "put", "p9"); code != exitError || !strings.Contains(errOut, "403 forbidden") {
			t.Errorf("provision with a check token: exit %d, %s", code, errOut)
		}
		if list := ok(t, "token", "list"); !strings.Contains(list, tok.ID) || !strings.Contains(list, "scaibunker-prod") || strings.Contains(list, tok.Token) {
			t.Errorf("token list:\n%s", list)
		}
		ok(t, "token", "revoke", tok.ID)
		if code, _, errOut := MustRun(t, modEnv, "check", "t1", "alice", "scaibunker:create"); code != exitError || !strings.Contains(errOut, "401 unauthorized") {
			t.Errorf("check with a revoked token: exit %d, %s", code, errOut)
		}
		fails(t, exitError, "404 not_found", "token", "revoke", "nope")
	})

	t.Run("TenantTokenAndLists", func(t *testing.T) {
		out := ok(t, "token", "create", "--name", "acme-admin", "--scope", "check", "--tenant", "t1", "--json")
		var tok struct {
			Token   string
			Tenants []string
		}
		if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" || len(tok.Tenants) != 1 || tok.Tenants[0] != "t1" {
			t.Fatalf("token create --tenant t1 --json: %s (%v)", out, err)
		}
		scoped := map[string]string{"AUTHZ_URL": url, "AUTHZ_TOKEN": tok.Token}
		if code, out, errOut := MustRun(t, scoped, "tenant", "list"); code != exitOK || !strings.Contains(out, "t1") || !strings.Contains(out, "acme") {
			t.Errorf("tenant list: exit %d, %s%s", code, out, errOut)
		}
		if code, _, errOut := MustRun(t, scoped, "check", "t2", "alice", "scaibunker:create"); code != exitError ||
			!strings.Contains(errOut, `token "acme-admin" reaches ["t1"], not "t2"`) {
			t.Errorf("check in another tenant: exit %d, %s", code, errOut)
		}
		if list := ok(t, "token", "list"); !strings.Contains(list, "acme-admin") || !strings.Contains(list, "(every tenant)") {
			t.Errorf("token list shows no tenants column:\n%s", list)
		}
		roles := ok(t, "role", "list", "t1")
		for _, want := range []string{"tenant_admin", "operators", "Bot operators"} {
			if !strings.Contains(roles, want) {
				t.Errorf("role list lacks %q:\n%s", want, roles)
			}
		}
		members := ok(t, "member", "list", "t1")
		for _, want := range []string{"alice", "tenant_admin", "sa:ci-bot", "operators"} {
			if !strings.Contains(members, want) {
				t.Errorf("member list lacks %q:\n%s", want, members)
			}
		}
	})

	t.Run("Offboard", func(t *testing.T) {
		ok(t, "admin", "super", "remove", "root")
		ok(t, "admin", "partner", "remove", "acme", "pat")
		ok(t, "member", "remove", "t1", "operators", "sa:ci-bot")
		ok(t, "resource", "delete", "t1", "bunker", "b1")
		ok(t, "role", "delete", "t1", "operators")
		zt := strings.TrimSpace(ok(t, "tenant", "delete", "t1"))
		fails(t, exitDenied, "", "check", "t1", "alice", "scaibunker:create", "--consistency-token", zt)
		ok(t, "partner", "delete", "acme")
	})
}

// MustOK runs a command that must succeed and returns its stdout.
func MustOK(tb testing.TB, env map[string]string, args ...string) string {
	tb.Helper()
	code, out, errOut := MustRun(tb, env, args...)
	if code != exitOK {
		tb.Fatalf("authzctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// MustFail runs a command that must exit with code and mention want on stderr.
func MustFail(tb testing.TB, env map[string]string, code int, want string, args ...string) {
	tb.Helper()
	got, out, errOut := MustRun(tb, env, args...)
	if got != code || !strings.Contains(errOut, want) {
		tb.Errorf("authzctl %s: exit %d, stderr %q (stdout %q); want exit %d mentioning %q",
			strings.Join(args, " "), got, errOut, out, code, want)
	}
}
