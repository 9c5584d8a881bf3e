package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scailabs/authzd/client"
)

// root builds the command tree. Each call makes fresh flag variables.
func root() *command {
	return &command{
		name:    "authzctl",
		summary: "authzctl drives authzd: provisioning, checks, the audit trail and API tokens.",
		help: `authzd's URL and an API token come from AUTHZ_URL and AUTHZ_TOKEN, or --url and --token.
The token needs the scope of the command: provision (partner, tenant, admin, role, member,
resource), check (check, explain, permissions, keys), audit:read (audit) or admin (token).

A user id is "alice" (a user) or "sa:ci-bot" (a service account). Provisioning commands print
the zed token of their write; pass it to check --consistency-token to see the write at once.

Examples:
  authzctl partner put acme
  authzctl tenant put t1 --partner acme
  authzctl member add t1 tenant_admin alice
  authzctl role put t1 operators --name "Bot operators" --permission scaibunker:create,scaibunker:execute
  authzctl check t1 alice scaibunker:create
  authzctl explain t1 alice scaibunker:execute --resource bunker:b1
  authzctl audit --module scaibunker --since 2026-05-01 --tenant t1`,
		subs: []*command{
			partnerCmd(), tenantCmd(), adminCmd(), roleCmd(), memberCmd(), resourceCmd(),
			checkCmd(), explainCmd(), permissionsCmd(), keysCmd(), auditCmd(), tokenCmd(),
			importCmd(), exportCmd(), shadowReportCmd(), whatifCmd(),
		},
	}
}

// writeCmd is a leaf that makes one provisioning write and prints its zed token. The tree below is a
// table of writeCmd rows, each naming its client call; they look alike by design.
func writeCmd(name, args, summary string, nargs int, write func(ctx context.Context, c *client.Client, args []string) (string, error)) *command {
	return &command{
		name: name, args: args, summary: summary, nargs: nargs,
		run: func(ctx context.Context, e *env, c *client.Client, args []string) error {
			token, err := write(ctx, c, args)
			if err != nil {
				return err
			}
			return printZedToken(e, token)
		},
	}
}

func partnerCmd() *command {
	return &command{
		name: "partner", summary: "Create or delete partners.",
		subs: []*command{
			writeCmd("put", "<partner_id>", "Create a partner (idempotent).", 1,
				func(ctx context.Context, c *client.Client, a []string) (string, error) {
					return c.PutPartner(ctx, a[0])
				}),
			writeCmd("delete", "<partner_id>", "Delete a partner; refused while tenants remain under it.", 1,
				func(ctx context.Context, c *client.Client, a []string) (string, error) {
					return c.DeletePartner(ctx, a[0])
				}),
		},
	}
}

func tenantCmd() *command {
	var partner string
	put := writeCmd("put", "<tenant_id> --partner <partner_id>", "Create a tenant under a partner (idempotent).", 1,
		func(ctx context.Context, c *client.Client, a []string) (string, error) {
			if partner == "" {
				return "", usagef("--partner is required")
			}
			return c.PutTenant(ctx, a[0], partner)
		})
	put.flags = func(fs *flag.FlagSet) {
		fs.StringVar(&partner, "partner", "", "the partner the tenant belongs to (required)")
	}
	return &command{
		name: "tenant", summary: "Create or offboard tenants.",
		subs: []*command{
			put,
			writeCmd("delete", "<tenant_id>", "Offboard a tenant: delete all its memberships, roles and resources.", 1,
				func(ctx context.Context, c *client.Client, a []string) (string, error) {
					return c.DeleteTenant(ctx, a[0])
				}),
		},
	}
}

func adminCmd() *command {
	return &command{
		name: "admin", summary: "Grant or revoke platform super admin and partner admin.",
		subs: []*command{
			{
				name: "super", summary: "Platform super admins: hold every key in every tenant.",
				subs: []*command{
					writeCmd("add", "<user_id>", "Make a user a platform super admin.", 1,
						func(ctx context.Context, c *client.Client, a []string) (string, error) {
							return c.PutSuperAdmin(ctx, a[0])
						}),
					writeCmd("remove", "<user_id>", "Remove a platform super admin.", 1,
						func(ctx context.Context, c *client.Client, a []string) (string, error) {
							return c.DeleteSuperAdmin(ctx, a[0])
						}),
				},
			},
			{
				name: "partner", summary: "Partner admins: hold the partner_admin keys in the partner's tenants.",
				subs: []*command{
					writeCmd("add", "<partner_id> <user_id>", "Make a user an admin of a partner.", 2,
						func(ctx context.Context, c *client.Client, a []string) (string, error) {
							return c.PutPartnerAdmin(ctx, a[0], a[1])
						}),
					writeCmd("remove", "<partner_id> <user_id>", "Remove an admin of a partner.", 2,
						func(ctx context.Context, c *client.Client, a []string) (string, error) {
							return c.DeletePartnerAdmin(ctx, a[0], a[1])
						}),
				},
			},
		},
	}
}

func roleCmd() *command {
	var name string
	var keys stringList
	put := writeCmd("put", "<tenant_id> <role_id>", "Create a custom role or replace its keys (members stay).", 2,
		func(ctx context.Context, c *client.Client, a []string) (string, error) {
			n := name
			if n == "" {
				n = a[1]
			}
			return c.PutRole(ctx, client.Role{TenantID: a[0], RoleID: a[1], Name: n, ModulePermissions: keys})
		})
	put.help = "With no --permission the role holds no key. Built-in roles (tenant_admin, tenant_user,\ntenant_viewer) cannot be changed; their keys come from the module manifests."
	put.flags = func(fs *flag.FlagSet) {
		fs.StringVar(&name, "name", "", "human-readable name (default: the role id)")
		fs.Var(&keys, "permission", "a key the role grants; repeat or separate with commas")
	}
	get := &command{
		name: "get", args: "<tenant_id> <role_id>", summary: "Show a custom role's keys.", nargs: 2,
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			r, err := c.GetRole(ctx, a[0], a[1])
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, r)
			}
			fmt.Fprintf(e.stdout, "tenant_id:          %s\nrole_id:            %s\nmodule_permissions: %s\n",
				r.TenantID, r.RoleID, strings.Join(r.ModulePermissions, ", "))
			return nil
		},
	}
	return &command{
		name: "role", summary: "Manage a tenant's custom roles.",
		subs: []*command{
			put, get,
			writeCmd("delete", "<tenant_id> <role_id>", "Delete a custom role with its members and grants.", 2,
				func(ctx context.Context, c *client.Client, a []string) (string, error) {
					return c.DeleteRole(ctx, a[0], a[1])
				}),
		},
	}
}

func memberCmd() *command {
	const roles = "role_id is tenant_admin, tenant_user, tenant_viewer or a custom role."
	add := writeCmd("add", "<tenant_id> <role_id> <user_id>", "Add a user to a role of a tenant.", 3,
		func(ctx context.Context, c *client.Client, a []string) (string, error) {
			return c.AddRoleMember(ctx, a[0], a[1], a[2])
		})
	add.help = roles
	remove := writeCmd("remove", "<tenant_id> <role_id> <user_id>", "Remove a user from a role of a tenant.", 3,
		func(ctx context.Context, c *client.Client, a []string) (string, error) {
			return c.RemoveRoleMember(ctx, a[0], a[1], a[2])
		})
	remove.help = roles
	return &command{name: "member", summary: "Add users to or remove them from tenant roles.", subs: []*command{add, remove}}
}

func resourceCmd() *command {
	var owner string
	put := writeCmd("put", "<tenant_id> <type> <resource_id> --owner <user_id>", "Register a resource of a tenant and its owner.", 3,
		func(ctx context.Context, c *client.Client, a []string) (string, error) {
			if owner == "" {
				return "", usagef("--owner is required")
			}
			return c.PutResource(ctx, a[0], a[1], a[2], owner)
		})
	put.help = "type is bunker or binding."
	put.flags = func(fs *flag.FlagSet) { fs.StringVar(&owner, "owner", "", "the user who owns the resource (required)") }
	return &command{
		name: "resource", summary: "Register or delete resources (bunkers, bindings).",
		subs: []*command{
			put,
			writeCmd("delete", "<tenant_id> <type> <resource_id>", "Delete a resource of a tenant.", 3,
				func(ctx context.Context, c *client.Client, a []string) (string, error) {
					return c.DeleteResource(ctx, a[0], a[1], a[2])
				}),
		},
	}
}

func checkCmd() *command {
	var cf checkFlags
	var action string
	return &command{
		name: "check", args: "<tenant_id> <user_id> <key>", nargs: 3,
		summary: "Ask whether a user holds a module-permission key in a tenant.",
		help: `Prints "allowed" or "denied" and exits 0 or 1, so scripts can test it:
  authzctl check t1 alice scaibunker:execute --resource bunker:b1 && echo yes`,
		flags: func(fs *flag.FlagSet) {
			cf.define(fs)
			fs.StringVar(&action, "action", "", "action recorded in the audit trail")
		},
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			opts, err := cf.options()
			if err != nil {
				return err
			}
			if action != "" {
				opts = append(opts, client.WithAction(action))
			}
			d, err := c.HasModulePermission(ctx, a[0], a[1], a[2], opts...)
			if err != nil {
				return err
			}
			return printDecision(e, d.Allowed, d, func(w io.Writer) error {
				word := "denied"
				if d.Allowed {
					word = "allowed"
				}
				fmt.Fprintf(w, "%s\tdecision_id=%s checked_at=%s\n", word, d.DecisionID, d.CheckedAt)
				return nil
			})
		},
	}
}

func permissionsCmd() *command {
	var consistency string
	return &command{
		name: "permissions", args: "<tenant_id> <user_id>", nargs: 2,
		summary: "List every tenant-level key a user holds in a tenant.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&consistency, "consistency-token", "", "zed token of a write the answer must reflect")
		},
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			var opts []client.CheckOption
			if consistency != "" {
				opts = append(opts, client.WithConsistencyToken(consistency))
			}
			keys, err := c.EffectivePermissions(ctx, a[0], a[1], opts...)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"permissions": keys})
			}
			for _, k := range keys {
				fmt.Fprintln(e.stdout, k)
			}
			return nil
		},
	}
}

func keysCmd() *command {
	var module string
	return &command{
		name: "keys", summary: "List the module-permission keys authzd knows.",
		flags: func(fs *flag.FlagSet) { fs.StringVar(&module, "module", "", "only keys of this module") },
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			keys, err := c.Keys(ctx)
			if err != nil {
				return err
			}
			shown := keys[:0]
			for _, k := range keys {
				if module == "" || k.Module == module {
					shown = append(shown, k)
				}
			}
			if e.json {
				return printJSON(e, map[string]any{"keys": shown})
			}
			t := newTable(e.stdout, "KEY", "DESCRIPTION")
			for _, k := range shown {
				t.row(k.Key, k.Description)
			}
			return t.flush()
		},
	}
}

func auditCmd() *command {
	var q client.AuditQuery
	var since, until string
	var limit int
	return &command{
		name: "audit", summary: "Read the audit trail, oldest first, following pages ('audit verify': check its hash chain).",
		subs: []*command{auditVerifyCmd()},
		help: `--since and --until take a date (2026-05-01, midnight UTC), an RFC 3339 time
(2026-05-01T12:00:00Z) or a duration back from now (24h, 90m). --limit caps the number of
events printed (0: all of them). With --json, each event is printed as one JSON object per line.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&q.Module, "module", "", "only events of this module (e.g. scaibunker, or authzd for provisioning)")
			fs.StringVar(&since, "since", "", "only events at or after this time")
			fs.StringVar(&until, "until", "", "only events before this time")
			fs.StringVar(&q.TenantID, "tenant", "", "only events of this tenant")
			fs.StringVar(&q.ActorUserID, "actor", "", "only events of this user")
			fs.StringVar(&q.Decision, "decision", "", "only allowed or denied events")
			fs.IntVar(&limit, "limit", 100, "print at most this many events (0: all)")
		},
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			now := time.Now()
			var err error
			if q.Since, err = parseWhen("since", since, now); err != nil {
				return err
			}
			if q.Until, err = parseWhen("until", until, now); err != nil {
				return err
			}
			switch q.Decision {
			case "", client.DecisionAllowed, client.DecisionDenied:
			default:
				return usagef("--decision must be allowed or denied")
			}
			if limit < 0 {
				return usagef("--limit must be 0 or more")
			}
			q.Limit = 1000
			if limit > 0 {
				q.Limit = min(limit, 1000)
			}
			return printAudit(ctx, e, c, q, limit)
		},
	}
}

// parseWhen reads a date, an RFC 3339 time or a duration before now.
func parseWhen(flagName, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, usagef("--%s %q is not a date (2026-05-01), an RFC 3339 time or a duration (24h)", flagName, s)
}

func tokenCmd() *command {
	var name string
	var scopes stringList
	create := &command{
		name: "create", args: "--name <name> --scope <scope>...", nargs: 0,
		summary: "Create an API token. Its secret is printed once; store it now.",
		help:    "Scopes: check, provision, audit:read, admin.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&name, "name", "", "what the token is for, e.g. scaibunker-prod (required)")
			fs.Var(&scopes, "scope", "a scope of the token; repeat or separate with commas (required)")
		},
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			if name == "" || len(scopes) == 0 {
				return usagef("--name and at least one --scope are required")
			}
			t, err := c.CreateToken(ctx, name, scopes...)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, t)
			}
			fmt.Fprintf(e.stdout, "id:     %s\nname:   %s\nscopes: %s\ntoken:  %s\n", t.ID, t.Name, strings.Join(t.Scopes, ","), t.Secret)
			fmt.Fprintln(e.stderr, "Store the token now: authzd keeps only its hash and will not show it again.")
			return nil
		},
	}
	list := &command{
		name: "list", summary: "List API tokens, revoked ones included (never their secrets).",
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			tokens, err := c.ListTokens(ctx)
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"tokens": tokens})
			}
			t := newTable(e.stdout, "ID", "NAME", "SCOPES", "CREATED", "REVOKED")
			for _, tok := range tokens {
				revoked := "-"
				if tok.RevokedAt != nil {
					revoked = formatTime(*tok.RevokedAt)
				}
				t.row(tok.ID, tok.Name, strings.Join(tok.Scopes, ","), formatTime(tok.CreatedAt), revoked)
			}
			return t.flush()
		},
	}
	revoke := &command{
		name: "revoke", args: "<token_id>", nargs: 1, summary: "Revoke an API token.",
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			if err := c.RevokeToken(ctx, a[0]); err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"revoked": a[0]})
			}
			fmt.Fprintf(e.stdout, "revoked %s\n", a[0])
			return nil
		},
	}
	return &command{name: "token", summary: "Create, list and revoke API tokens.", subs: []*command{create, list, revoke}}
}
