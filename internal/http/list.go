package http

import (
	"context"
	"encoding/base64"
	"net/http"
	"slices"
	"strconv"

	"github.com/scailabs/authzd/internal/authz"
)

// Lister lists what the graph holds of tenants, for the list routes and the
// console. authzd's SpiceDB adapter plays it.
type Lister interface {
	Tenants(ctx context.Context) ([]authz.TenantInfo, error)
	Roles(ctx context.Context, tenantID string) ([]authz.RoleInfo, error)
	Members(ctx context.Context, tenantID string) ([]authz.Member, error)
}

type tenantAnswer struct {
	TenantID  string `json:"tenant_id"`
	PartnerID string `json:"partner_id"`
}

type roleAnswer struct {
	RoleID            string   `json:"role_id"`
	Name              string   `json:"name"`
	Builtin           bool     `json:"builtin"`
	ModulePermissions []string `json:"module_permissions"`
	MemberCount       int      `json:"member_count"`
}

type memberAnswer struct {
	UserID string   `json:"user_id"`
	Roles  []string `json:"roles"`
}

// listPage reads cursor and limit (1 to 1000, default 100) of a list route.
// A cursor is the last id of the page before, opaque to callers.
func listPage(r *http.Request) (after string, limit int, err error) {
	q := r.URL.Query()
	for name, vals := range q {
		if name != "cursor" && name != "limit" {
			return "", 0, authz.Errorf(authz.EINVALID, "unknown query parameter %q", name)
		}
		if len(vals) > 1 {
			return "", 0, authz.Errorf(authz.EINVALID, "query parameter %q is given more than once", name)
		}
	}
	limit = 100
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 1000 {
			return "", 0, authz.Errorf(authz.EINVALID, "limit must be a number from 1 to 1000")
		}
	}
	if v := q.Get("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(raw) == 0 {
			return "", 0, authz.Errorf(authz.EINVALID, "cursor is not one this server issued")
		}
		after = string(raw)
	}
	return after, limit, nil
}

// cutPage returns the items after the cursor's id, at most limit of them,
// and the cursor of the next page ("" at the end). ids are sorted.
func cutPage[T any](items []T, id func(T) string, after string, limit int) ([]T, string) {
	start, _ := slices.BinarySearchFunc(items, after, func(it T, a string) int {
		if id(it) <= a {
			return -1
		}
		return 1
	})
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(id(items[end-1])))
	}
	return items[start:end], next
}

// ListTenants lists the tenants the request's token reaches.
func (s *Server) ListTenants(r *http.Request) ([]authz.TenantInfo, error) {
	all, err := s.lister.Tenants(r.Context())
	if err != nil {
		return nil, err
	}
	tok := tokenFrom(r.Context())
	return slices.DeleteFunc(all, func(t authz.TenantInfo) bool { return tok.Reaches(t.ID) != nil }), nil
}

func (s *Server) handleListTenants(w http.ResponseWriter, r *http.Request) {
	after, limit, err := listPage(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	all, err := s.ListTenants(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	page, next := cutPage(all, func(t authz.TenantInfo) string { return t.ID }, after, limit)
	out := make([]tenantAnswer, len(page))
	for i, t := range page {
		out[i] = tenantAnswer{TenantID: t.ID, PartnerID: t.PartnerID}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenants": out, "next_cursor": next})
}

// RoleView is a role with its display name and keys, as the list route and
// the console show it.
type RoleView struct {
	authz.RoleInfo
	Name string
	// KeyNames are the keys the role holds: a built-in role's from the
	// manifests, a custom role's from its grants.
	KeyNames []string
}

// ListRoles lists a tenant's roles with names and keys. The caller has
// checked that the token reaches the tenant.
func (s *Server) ListRoles(ctx context.Context, tenantID string) ([]RoleView, error) {
	roles, err := s.lister.Roles(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	var custom []string
	for _, ro := range roles {
		if !ro.Builtin {
			custom = append(custom, ro.ID)
		}
	}
	names, err := s.store.RoleNames(ctx, tenantID, custom)
	if err != nil {
		return nil, err
	}
	out := make([]RoleView, len(roles))
	for i, ro := range roles {
		v := RoleView{RoleInfo: ro, Name: ro.ID, KeyNames: []string{}}
		if n, ok := names[ro.ID]; ok {
			v.Name = n
		}
		if ro.Builtin {
			for _, k := range s.keys {
				if slices.Contains(k.Roles, ro.ID) {
					v.KeyNames = append(v.KeyNames, k.Key.String())
				}
			}
			slices.Sort(v.KeyNames)
		} else {
			for _, k := range ro.Keys {
				v.KeyNames = append(v.KeyNames, k.String())
			}
		}
		out[i] = v
	}
	return out, nil
}

func (s *Server) handleListRoles(w http.ResponseWriter, r *http.Request) {
	t, err := ids(r, "tenant_id")
	if err == nil && len(r.URL.Query()) > 0 {
		err = authz.Errorf(authz.EINVALID, "this route takes no query parameters")
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	roles, err := s.ListRoles(r.Context(), t[0])
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := make([]roleAnswer, len(roles))
	for i, ro := range roles {
		out[i] = roleAnswer{RoleID: ro.ID, Name: ro.Name, Builtin: ro.Builtin, ModulePermissions: ro.KeyNames, MemberCount: ro.Members}
	}
	writeJSON(w, http.StatusOK, map[string]any{"roles": out})
}

func (s *Server) handleListMembers(w http.ResponseWriter, r *http.Request) {
	t, err := ids(r, "tenant_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	after, limit, err := listPage(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	all, err := s.lister.Members(r.Context(), t[0])
	if err != nil {
		s.Error(w, r, err)
		return
	}
	page, next := cutPage(all, func(m authz.Member) string { return m.Subject.String() }, after, limit)
	out := make([]memberAnswer, len(page))
	for i, m := range page {
		out[i] = memberAnswer{UserID: m.Subject.String(), Roles: m.Roles}
	}
	writeJSON(w, http.StatusOK, map[string]any{"members": out, "next_cursor": next})
}
