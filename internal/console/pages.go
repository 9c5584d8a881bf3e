package console

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-chi/chi/v5"
)

// The API's answers, as far as the pages read them.
type (
	tenantItem struct {
		TenantID  string `json:"tenant_id"`
		PartnerID string `json:"partner_id"`
	}
	roleItem struct {
		RoleID            string   `json:"role_id"`
		Name              string   `json:"name"`
		Builtin           bool     `json:"builtin"`
		ModulePermissions []string `json:"module_permissions"`
		MemberCount       int      `json:"member_count"`
	}
	memberItem struct {
		UserID string   `json:"user_id"`
		Roles  []string `json:"roles"`
	}
	keyItem struct {
		Key         string `json:"key"`
		Module      string `json:"module"`
		Description string `json:"description"`
	}
)

// usersPerPage is how many users a matrix page shows.
const usersPerPage = 50

func (c *Console) tenants(ctx context.Context) ([]tenantItem, error) {
	var all []tenantItem
	cursor := ""
	for {
		var page struct {
			Tenants    []tenantItem `json:"tenants"`
			NextCursor string       `json:"next_cursor"`
		}
		path := "/v1/tenants?limit=1000"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		if err := c.call(ctx, "GET", path, nil, &page); err != nil {
			return nil, err
		}
		all = append(all, page.Tenants...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

func (c *Console) keys(ctx context.Context) ([]keyItem, error) {
	var ks struct {
		Keys []keyItem `json:"keys"`
	}
	err := c.call(ctx, "GET", "/v1/permissions/keys", nil, &ks)
	return ks.Keys, err
}

func (c *Console) handleTenants(w http.ResponseWriter, r *http.Request) {
	ts, err := c.tenants(r.Context())
	if err != nil {
		c.apiFail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "tenants", "Tenants", struct{ Tenants []tenantItem }{ts})
}

// apiFail shows an API refusal (403, 404, 400) with its message, or an
// internal error.
func (c *Console) apiFail(w http.ResponseWriter, r *http.Request, err error) {
	if status, msg, ok := userError(err); ok {
		c.fail(w, r, status, msg)
		return
	}
	c.internal(w, r, err)
}

type matrixRow struct {
	ID, Name, Link string
	Builtin        bool
	Members        int
	Held           []bool
}

type matrixPage struct {
	TenantID   string
	Keys       []keyItem
	Roles      []matrixRow
	Users      []matrixRow
	Cursor     string
	NextCursor string
	Error      string
	RoleID     string
	RoleName   string
}

func heldRow(keys []keyItem, held []string) []bool {
	out := make([]bool, len(keys))
	for i, k := range keys {
		out[i] = slices.Contains(held, k.Key)
	}
	return out
}

// matrix reads the matrix of a tenant: roles x keys, and one page of users x
// keys from the effective-permissions route (each audited as that route).
func (c *Console) matrix(ctx context.Context, tenantID, cursor string) (matrixPage, error) {
	m := matrixPage{TenantID: tenantID, Cursor: cursor}
	var roles struct {
		Roles []roleItem `json:"roles"`
	}
	if err := c.call(ctx, "GET", p("/v1/tenants/{}/roles", tenantID), nil, &roles); err != nil {
		return m, err
	}
	keys, err := c.keys(ctx)
	if err != nil {
		return m, err
	}
	m.Keys = keys
	for _, ro := range roles.Roles {
		m.Roles = append(m.Roles, matrixRow{ID: ro.RoleID, Name: ro.Name, Builtin: ro.Builtin, Members: ro.MemberCount,
			Link: p(Prefix+"/tenants/{}/roles/{}", tenantID, ro.RoleID), Held: heldRow(keys, ro.ModulePermissions)})
	}
	q := url.Values{"limit": {strconv.Itoa(usersPerPage)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var members struct {
		Members    []memberItem `json:"members"`
		NextCursor string       `json:"next_cursor"`
	}
	if err := c.call(ctx, "GET", p("/v1/tenants/{}/members", tenantID)+"?"+q.Encode(), nil, &members); err != nil {
		return m, err
	}
	m.NextCursor = members.NextCursor
	for _, u := range members.Members {
		var eff struct {
			Permissions []string `json:"permissions"`
		}
		if err := c.call(ctx, "GET", p("/v1/tenants/{}/users/{}/permissions", tenantID, u.UserID), nil, &eff); err != nil {
			return m, err
		}
		m.Users = append(m.Users, matrixRow{ID: u.UserID, Name: strings.Join(u.Roles, ", "), Held: heldRow(keys, eff.Permissions)})
	}
	return m, nil
}

func (c *Console) handleMatrix(w http.ResponseWriter, r *http.Request) {
	m, err := c.matrix(r.Context(), chi.URLParam(r, "tenant_id"), r.URL.Query().Get("cursor"))
	if err != nil {
		c.apiFail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "matrix", "Tenant "+m.TenantID, m)
}

func (c *Console) handleCreateRole(w http.ResponseWriter, r *http.Request) {
	tenantID := chi.URLParam(r, "tenant_id")
	roleID, name := strings.TrimSpace(r.PostForm.Get("role_id")), strings.TrimSpace(r.PostForm.Get("name"))
	if name == "" {
		name = roleID
	}
	ok, err := c.held(w, r, func(ctx context.Context) error {
		return c.call(ctx, "PUT", p("/v1/tenants/{}/roles/{}", tenantID, roleID), map[string]any{"name": name, "module_permissions": []string{}}, nil)
	})
	if !ok {
		return
	}
	if status, msg, isUser := userError(err); isUser {
		m, merr := c.matrix(r.Context(), tenantID, "")
		if merr != nil {
			c.apiFail(w, r, merr)
			return
		}
		m.Error, m.RoleID, m.RoleName = msg, roleID, name
		c.render(w, r, status, "matrix", "Tenant "+tenantID, m)
		return
	}
	if err != nil {
		c.internal(w, r, err)
		return
	}
	http.Redirect(w, r, p(Prefix+"/tenants/{}/roles/{}", tenantID, roleID), http.StatusSeeOther)
}

type keyBox struct {
	Key, Description string
	Held             bool
}

type moduleGroup struct {
	Module string
	Keys   []keyBox
}

type rolePage struct {
	TenantID string
	Role     roleItem
	Modules  []moduleGroup
	Members  []string
	Error    string
	NewUser  string
}

// rolePage reads a role, its keys by module (checked: held, or in want when
// a form is re-rendered) and its members.
func (c *Console) rolePage(ctx context.Context, tenantID, roleID string, want []string) (rolePage, error) {
	rp := rolePage{TenantID: tenantID}
	var roles struct {
		Roles []roleItem `json:"roles"`
	}
	if err := c.call(ctx, "GET", p("/v1/tenants/{}/roles", tenantID), nil, &roles); err != nil {
		return rp, err
	}
	i := slices.IndexFunc(roles.Roles, func(ro roleItem) bool { return ro.RoleID == roleID })
	if i < 0 {
		return rp, &apiError{status: http.StatusNotFound, message: "Role " + roleID + " does not exist in tenant " + tenantID + "."}
	}
	rp.Role = roles.Roles[i]
	if want == nil {
		want = rp.Role.ModulePermissions
	}
	keys, err := c.keys(ctx)
	if err != nil {
		return rp, err
	}
	for _, k := range keys {
		if len(rp.Modules) == 0 || rp.Modules[len(rp.Modules)-1].Module != k.Module {
			rp.Modules = append(rp.Modules, moduleGroup{Module: k.Module})
		}
		g := &rp.Modules[len(rp.Modules)-1]
		g.Keys = append(g.Keys, keyBox{Key: k.Key, Description: k.Description, Held: slices.Contains(want, k.Key)})
	}
	cursor := ""
	for {
		var page struct {
			Members    []memberItem `json:"members"`
			NextCursor string       `json:"next_cursor"`
		}
		q := url.Values{"limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if err := c.call(ctx, "GET", p("/v1/tenants/{}/members", tenantID)+"?"+q.Encode(), nil, &page); err != nil {
			return rp, err
		}
		for _, m := range page.Members {
			if slices.Contains(m.Roles, roleID) {
				rp.Members = append(rp.Members, m.UserID)
			}
		}
		if cursor = page.NextCursor; cursor == "" {
			return rp, nil
		}
	}
}

func (c *Console) handleRole(w http.ResponseWriter, r *http.Request) {
	rp, err := c.rolePage(r.Context(), chi.URLParam(r, "tenant_id"), chi.URLParam(r, "role_id"), nil)
	if err != nil {
		c.apiFail(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "role", "Role "+rp.Role.Name, rp)
}

// handleRolePost applies one form of the role page (action: save, add_member,
// remove_member, delete) through the API, then shows the page again; bad
// input re-renders the form with 400 and the API's message.
func (c *Console) handleRolePost(w http.ResponseWriter, r *http.Request) {
	tenantID, roleID := chi.URLParam(r, "tenant_id"), chi.URLParam(r, "role_id")
	f := r.PostForm
	var write func(ctx context.Context) error
	var want []string
	next := p(Prefix+"/tenants/{}/roles/{}", tenantID, roleID)
	switch f.Get("action") {
	case "save":
		want = f["key"]
		if want == nil {
			want = []string{}
		}
		write = func(ctx context.Context) error {
			return c.call(ctx, "PUT", p("/v1/tenants/{}/roles/{}", tenantID, roleID),
				map[string]any{"name": strings.TrimSpace(f.Get("name")), "module_permissions": want}, nil)
		}
	case "add_member", "remove_member":
		method := "PUT"
		if f.Get("action") == "remove_member" {
			method = "DELETE"
		}
		write = func(ctx context.Context) error {
			return c.call(ctx, method, p("/v1/tenants/{}/roles/{}/members/{}", tenantID, roleID, strings.TrimSpace(f.Get("user_id"))), nil, nil)
		}
	case "delete":
		next = p(Prefix+"/tenants/{}", tenantID)
		write = func(ctx context.Context) error {
			return c.call(ctx, "DELETE", p("/v1/tenants/{}/roles/{}", tenantID, roleID), nil, nil)
		}
	default:
		c.fail(w, r, http.StatusBadRequest, "The form named no action (save, add_member, remove_member or delete).")
		return
	}
	ok, err := c.held(w, r, write)
	if !ok {
		return
	}
	if status, msg, isUser := userError(err); isUser {
		rp, rerr := c.rolePage(r.Context(), tenantID, roleID, want)
		if rerr != nil {
			c.apiFail(w, r, rerr)
			return
		}
		rp.Error = msg
		if name := f.Get("name"); f.Get("action") == "save" {
			rp.Role.Name = name
		}
		if f.Get("action") == "add_member" {
			rp.NewUser = f.Get("user_id")
		}
		c.render(w, r, status, "role", "Role "+rp.Role.Name, rp)
		return
	}
	if err != nil {
		c.internal(w, r, err)
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

type eventItem struct {
	ID           string         `json:"id"`
	OccurredAt   time.Time      `json:"occurred_at"`
	Module       string         `json:"module"`
	Action       string         `json:"action"`
	ActorUserID  string         `json:"actor_user_id"`
	TenantID     string         `json:"tenant_id"`
	ResourceType string         `json:"resource_type"`
	ResourceID   string         `json:"resource_id"`
	Permission   string         `json:"permission"`
	Decision     string         `json:"decision"`
	Client       string         `json:"client"`
	Details      map[string]any `json:"details"`
}

type auditPage struct {
	Filter  map[string]string
	Tenants []tenantItem
	Events  []eventItem
	Next    string
	Error   string
	Chain   ChainStatus
}

var auditFilters = []string{"tenant_id", "module", "actor_user_id", "decision", "since", "until", "cursor"}

func (c *Console) handleAudit(w http.ResponseWriter, r *http.Request) {
	ap := auditPage{Filter: map[string]string{}, Chain: c.Status()}
	q := url.Values{"limit": {"100"}}
	for _, name := range auditFilters {
		if v := strings.TrimSpace(r.URL.Query().Get(name)); v != "" {
			ap.Filter[name] = v
			q.Set(name, v)
		}
	}
	ts, err := c.tenants(r.Context())
	if err != nil {
		c.apiFail(w, r, err)
		return
	}
	ap.Tenants = ts
	var page struct {
		Events     []eventItem `json:"events"`
		NextCursor string      `json:"next_cursor"`
	}
	status := http.StatusOK
	if err := c.call(r.Context(), "GET", "/v1/audit/events?"+q.Encode(), nil, &page); err != nil {
		st, msg, ok := userError(err)
		if !ok {
			c.internal(w, r, err)
			return
		}
		status, ap.Error = st, msg
	}
	ap.Events = page.Events
	if page.NextCursor != "" {
		nq := url.Values{}
		for k, v := range ap.Filter {
			nq.Set(k, v)
		}
		nq.Set("cursor", page.NextCursor)
		ap.Next = Prefix + "/audit?" + nq.Encode()
	}
	c.render(w, r, status, "audit", "Audit trail", ap)
}

type explainPage struct {
	Tenants []tenantItem
	Keys    []keyItem
	Form    map[string]string
	Error   string
	Result  *explainResult
}

type explainResult struct {
	Allowed    bool     `json:"allowed"`
	CheckedAt  string   `json:"checked_at"`
	DecisionID string   `json:"decision_id"`
	Reasons    []string `json:"reasons"`
	Trace      any      `json:"trace"`
}

func (c *Console) handleExplain(w http.ResponseWriter, r *http.Request) {
	ep := explainPage{Form: map[string]string{}}
	var err error
	if ep.Tenants, err = c.tenants(r.Context()); err == nil {
		ep.Keys, err = c.keys(r.Context())
	}
	if err != nil {
		c.apiFail(w, r, err)
		return
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		for _, n := range []string{"tenant_id", "user_id", "permission", "resource_type", "resource_id"} {
			ep.Form[n] = strings.TrimSpace(r.PostForm.Get(n))
		}
		body := map[string]any{"tenant_id": ep.Form["tenant_id"], "user_id": ep.Form["user_id"], "permission": ep.Form["permission"]}
		if ep.Form["resource_type"] != "" || ep.Form["resource_id"] != "" {
			body["resource"] = map[string]string{"type": ep.Form["resource_type"], "id": ep.Form["resource_id"]}
		}
		var res explainResult
		if err := c.call(r.Context(), "POST", "/v1/permissions/explain", body, &res); err != nil {
			st, msg, ok := userError(err)
			if !ok {
				c.internal(w, r, err)
				return
			}
			status, ep.Error = st, msg
		} else {
			ep.Result = &res
		}
	}
	c.render(w, r, status, "explain", "Explain a decision", ep)
}

type tokenItem struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Scopes    []string   `json:"scopes"`
	Tenants   []string   `json:"tenants"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

type scopeBox struct {
	Name   string
	Picked bool
}

type tokensPage struct {
	Tokens []tokenItem
	Scopes []scopeBox
	Form   map[string]string
	Picked []string
	Error  string
}

var allScopes = []string{"check", "provision", "audit:read", "admin"}

func (c *Console) renderTokens(w http.ResponseWriter, r *http.Request, status int, tp tokensPage) {
	var list struct {
		Tokens []tokenItem `json:"tokens"`
	}
	if err := c.call(r.Context(), "GET", "/v1/tokens", nil, &list); err != nil {
		c.apiFail(w, r, err)
		return
	}
	tp.Tokens = list.Tokens
	for _, sc := range allScopes {
		tp.Scopes = append(tp.Scopes, scopeBox{Name: sc, Picked: slices.Contains(tp.Picked, sc)})
	}
	if tp.Form == nil {
		tp.Form = map[string]string{}
	}
	c.render(w, r, status, "tokens", "API tokens", tp)
}

func (c *Console) handleTokens(w http.ResponseWriter, r *http.Request) {
	c.renderTokens(w, r, http.StatusOK, tokensPage{})
}

// handleCreateToken makes a token through the API and hands its secret over
// as a one-time download, never in a page.
func (c *Console) handleCreateToken(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	body := map[string]any{"name": strings.TrimSpace(f.Get("name")), "scopes": f["scope"]}
	if f["scope"] == nil {
		body["scopes"] = []string{}
	}
	if raw := strings.TrimSpace(f.Get("tenants")); raw != "" {
		body["tenants"] = strings.FieldsFunc(raw, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })
	}
	var created struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if err := c.call(r.Context(), "POST", "/v1/tokens", body, &created); err != nil {
		status, msg, ok := userError(err)
		if !ok {
			c.internal(w, r, err)
			return
		}
		c.renderTokens(w, r, status, tokensPage{Error: msg, Picked: f["scope"],
			Form: map[string]string{"name": f.Get("name"), "tenants": f.Get("tenants")}})
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="authzd-token-`+created.ID+`.txt"`)
	_, _ = w.Write([]byte(created.Token + "\n"))
}

func (c *Console) handleRevokeToken(w http.ResponseWriter, r *http.Request) {
	if err := c.call(r.Context(), "DELETE", p("/v1/tokens/{}", chi.URLParam(r, "token_id")), nil, nil); err != nil {
		status, msg, ok := userError(err)
		if !ok {
			c.internal(w, r, err)
			return
		}
		c.renderTokens(w, r, status, tokensPage{Error: msg})
		return
	}
	http.Redirect(w, r, Prefix+"/tokens", http.StatusSeeOther)
}
