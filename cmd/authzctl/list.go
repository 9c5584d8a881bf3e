package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/scailabs/authzd/client"
)

// allPages follows a list route's cursors to its end.
func allPages[T any](page func(cursor string) ([]T, string, error)) ([]T, error) {
	var all []T
	cursor := ""
	for {
		items, next, err := page(cursor)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		cursor = next
	}
}

func tenantListCmd() *command {
	return &command{
		name: "list", summary: "List the tenants the token reaches, with their partners.",
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			tenants, err := allPages(func(cur string) ([]client.Tenant, string, error) { return c.ListTenants(ctx, cur) })
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"tenants": tenants})
			}
			t := newTable(e.stdout, "TENANT", "PARTNER")
			for _, x := range tenants {
				t.row(x.TenantID, x.PartnerID)
			}
			return t.flush()
		},
	}
}

func roleListCmd() *command {
	return &command{
		name: "list", args: "<tenant_id>", nargs: 1, summary: "List a tenant's built-in and custom roles.",
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			roles, err := c.ListRoles(ctx, a[0])
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"roles": roles})
			}
			t := newTable(e.stdout, "ROLE", "NAME", "BUILTIN", "MEMBERS", "KEYS")
			for _, r := range roles {
				t.row(r.RoleID, r.Name, strconv.FormatBool(r.Builtin), strconv.Itoa(r.MemberCount), strconv.Itoa(len(r.ModulePermissions)))
			}
			return t.flush()
		},
	}
}

func memberListCmd() *command {
	return &command{
		name: "list", args: "<tenant_id>", nargs: 1, summary: "List the users holding roles in a tenant.",
		run: func(ctx context.Context, e *env, c *client.Client, a []string) error {
			members, err := allPages(func(cur string) ([]client.Member, string, error) { return c.ListMembers(ctx, a[0], cur) })
			if err != nil {
				return err
			}
			if e.json {
				return printJSON(e, map[string]any{"members": members})
			}
			t := newTable(e.stdout, "USER", "ROLES")
			for _, m := range members {
				t.row(m.UserID, strings.Join(m.Roles, ","))
			}
			return t.flush()
		},
	}
}
