package http

// Each provisioning handler decodes, validates its path and body, and calls
// provision; the steps are written out per route so that each route's rules
// read in one place, with the shared parts (ids, pathUser, customRole,
// resourceParams, provision) as helpers.

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/scailabs/authzd/internal/authz"
)

type writeAnswer struct {
	ZedToken string `json:"zed_token"`
}

// change is one provisioning write, described for its audit row.
type change struct {
	action       string
	tenantID     string
	resourceType string
	resourceID   string
	permission   string
	details      map[string]any
}

// provision runs a validated write, commits its audit row, then answers with
// the zed token. A write SpiceDB applied but whose row could not be committed
// answers 503; the caller's retry is idempotent and records the row.
//
// The write is made under its audit row's decision_id (authz.WithWriteID):
// SpiceDB keeps it in the transaction's metadata, so that a change seen on the
// Watch stream can be matched to the row that accounts for it (see
// internal/outofband).
func (s *Server) provision(w http.ResponseWriter, r *http.Request, c change, write func(context.Context) (string, error)) {
	actor := actorFrom(r.Context()) // validated by the actor middleware
	decisionID := newDecisionID()
	token, err := write(authz.WithWriteID(r.Context(), decisionID))
	if err != nil {
		s.Error(w, r, err)
		return
	}
	e := authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: c.action, ActorUserID: actor,
		TenantID: c.tenantID, ResourceType: c.resourceType, ResourceID: c.resourceID, Permission: c.permission,
		Decision: authz.DecisionAllowed, ZedToken: token, DecisionID: decisionID,
		Client: clientName(tokenFrom(r.Context())), RequestID: RequestID(r.Context()), Details: c.details,
	}
	if err := s.record(r, e); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, writeAnswer{ZedToken: token})
}

// ids validates the named path parameters.
func ids(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	for i, n := range names {
		v := chi.URLParam(r, n)
		if err := authz.ValidateID(n, v); err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// pathUser validates the path ids names, then parses the user_id the path
// ends with.
func pathUser(r *http.Request, names ...string) ([]string, authz.Subject, error) {
	v, err := ids(r, names...)
	if err != nil {
		return nil, authz.Subject{}, err
	}
	subj, err := authz.ParseSubject("user_id", chi.URLParam(r, "user_id"))
	if err != nil {
		return nil, authz.Subject{}, err
	}
	return v, subj, nil
}

func (s *Server) handlePutPartner(w http.ResponseWriter, r *http.Request) {
	var body struct{}
	if err := decode(r, &body, true); err != nil {
		s.Error(w, r, err)
		return
	}
	p, err := ids(r, "partner_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "partner.put", resourceType: "partner", resourceID: p[0]},
		func(ctx context.Context) (string, error) { return s.provisioner.PutPartner(ctx, p[0]) })
}

func (s *Server) handleDeletePartner(w http.ResponseWriter, r *http.Request) {
	p, err := ids(r, "partner_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "partner.delete", resourceType: "partner", resourceID: p[0]},
		func(ctx context.Context) (string, error) { return s.provisioner.DeletePartner(ctx, p[0]) })
}

func (s *Server) handlePartnerAdmin(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, subj, err := pathUser(r, "partner_id")
		if err != nil {
			s.Error(w, r, err)
			return
		}
		c := change{action: "partner_admin.grant", resourceType: "partner", resourceID: p[0], permission: authz.RolePartnerAdmin,
			details: map[string]any{"user_id": subj.String()}}
		write := func(ctx context.Context) (string, error) { return s.provisioner.PutPartnerAdmin(ctx, p[0], subj) }
		if !add {
			c.action = "partner_admin.revoke"
			write = func(ctx context.Context) (string, error) { return s.provisioner.DeletePartnerAdmin(ctx, p[0], subj) }
		}
		s.provision(w, r, c, write)
	}
}

func (s *Server) handleSuperAdmin(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, subj, err := pathUser(r)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		c := change{action: "super_admin.grant", resourceType: "platform", resourceID: authz.PlatformID, permission: authz.RoleSuperAdmin,
			details: map[string]any{"user_id": subj.String()}}
		write := func(ctx context.Context) (string, error) { return s.provisioner.PutSuperAdmin(ctx, subj) }
		if !add {
			c.action = "super_admin.revoke"
			write = func(ctx context.Context) (string, error) { return s.provisioner.DeleteSuperAdmin(ctx, subj) }
		}
		s.provision(w, r, c, write)
	}
}

func (s *Server) handlePutTenant(w http.ResponseWriter, r *http.Request) {
	var body struct {
		PartnerID string `json:"partner_id"`
	}
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	t, err := ids(r, "tenant_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if err := authz.ValidateID("partner_id", body.PartnerID); err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "tenant.put", tenantID: t[0], resourceType: "tenant", resourceID: t[0],
		details: map[string]any{"partner_id": body.PartnerID}},
		func(ctx context.Context) (string, error) { return s.provisioner.PutTenant(ctx, t[0], body.PartnerID) })
}

func (s *Server) handleDeleteTenant(w http.ResponseWriter, r *http.Request) {
	t, err := ids(r, "tenant_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "tenant.delete", tenantID: t[0], resourceType: "tenant", resourceID: t[0]},
		func(ctx context.Context) (string, error) { return s.provisioner.DeleteTenant(ctx, t[0]) })
}

// customRole validates tenant_id and a custom role_id, refusing built-in ids.
func customRole(r *http.Request) (tenantID, roleID string, err error) {
	v, err := ids(r, "tenant_id", "role_id")
	if err != nil {
		return "", "", err
	}
	if authz.IsBuiltinRole(v[1]) {
		return "", "", authz.Errorf(authz.EINVALID, "role_id %q is a built-in role; its keys come from the module manifests and cannot be changed here", v[1])
	}
	if _, err := authz.ScopedID("role_id", v[0], v[1]); err != nil {
		return "", "", err
	}
	return v[0], v[1], nil
}

func (s *Server) handlePutRole(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Name              string   `json:"name"`
		ModulePermissions []string `json:"module_permissions"`
	}
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	tenantID, roleID, err := customRole(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if body.Name == "" || len(body.Name) > 256 {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "name is required (at most 256 bytes)"))
		return
	}
	if body.ModulePermissions == nil {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "module_permissions is required (it may be empty)"))
		return
	}
	keys := make([]authz.Key, 0, len(body.ModulePermissions))
	names := make([]string, 0, len(body.ModulePermissions))
	for i, raw := range body.ModulePermissions {
		k, err := s.key("module_permissions["+itoa(i)+"]", raw)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		if !slices.Contains(names, raw) {
			keys, names = append(keys, k), append(names, raw)
		}
	}
	slices.Sort(names)
	s.provision(w, r, change{action: "role.put", tenantID: tenantID, resourceType: "role", resourceID: roleID,
		details: map[string]any{"name": body.Name, "module_permissions": names}},
		func(ctx context.Context) (string, error) { return s.provisioner.PutRole(ctx, tenantID, roleID, keys) })
}

func (s *Server) handleGetRole(w http.ResponseWriter, r *http.Request) {
	tenantID, roleID, err := customRole(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	keys, err := s.provisioner.GetRole(r.Context(), tenantID, roleID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.String()
	}
	writeJSON(w, http.StatusOK, map[string]any{"tenant_id": tenantID, "role_id": roleID, "module_permissions": names})
}

func (s *Server) handleDeleteRole(w http.ResponseWriter, r *http.Request) {
	tenantID, roleID, err := customRole(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "role.delete", tenantID: tenantID, resourceType: "role", resourceID: roleID},
		func(ctx context.Context) (string, error) { return s.provisioner.DeleteRole(ctx, tenantID, roleID) })
}

func (s *Server) handleMember(add bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := ids(r, "tenant_id", "role_id")
		if err != nil {
			s.Error(w, r, err)
			return
		}
		if authz.IsPlatformRole(v[1]) {
			s.Error(w, r, authz.Errorf(authz.EINVALID, "role_id %q is not a tenant role; use /v1/platform/super_admins or /v1/partners/{partner_id}/admins", v[1]))
			return
		}
		subj, err := authz.ParseSubject("user_id", chi.URLParam(r, "user_id"))
		if err != nil {
			s.Error(w, r, err)
			return
		}
		action := "member.add"
		if !add {
			action = "member.remove"
		}
		s.provision(w, r, change{action: action, tenantID: v[0], resourceType: "role", resourceID: v[1], permission: v[1],
			details: map[string]any{"user_id": subj.String()}},
			func(ctx context.Context) (string, error) { return s.provisioner.SetMember(ctx, v[0], v[1], subj, add) })
	}
}

func (s *Server) resourceParams(r *http.Request) (string, authz.Resource, error) {
	v, err := ids(r, "tenant_id", "resource_id")
	if err != nil {
		return "", authz.Resource{}, err
	}
	typ := chi.URLParam(r, "type")
	if !slices.Contains(s.model.ResourceTypes(), typ) {
		return "", authz.Resource{}, authz.UnknownResourceType(typ, s.model.ResourceTypes())
	}
	if _, err := authz.ScopedID("resource_id", v[0], v[1]); err != nil {
		return "", authz.Resource{}, err
	}
	return v[0], authz.Resource{Type: typ, ID: v[1]}, nil
}

func (s *Server) handlePutResource(w http.ResponseWriter, r *http.Request) {
	var body struct {
		OwnerID string `json:"owner_id"`
	}
	if err := decode(r, &body, false); err != nil {
		s.Error(w, r, err)
		return
	}
	tenantID, res, err := s.resourceParams(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	owner, err := authz.ParseSubject("owner_id", body.OwnerID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "resource.put", tenantID: tenantID, resourceType: res.Type, resourceID: res.ID,
		details: map[string]any{"owner_id": owner.String()}},
		func(ctx context.Context) (string, error) { return s.provisioner.PutResource(ctx, tenantID, res, owner) })
}

func (s *Server) handleDeleteResource(w http.ResponseWriter, r *http.Request) {
	tenantID, res, err := s.resourceParams(r)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.provision(w, r, change{action: "resource.delete", tenantID: tenantID, resourceType: res.Type, resourceID: res.ID},
		func(ctx context.Context) (string, error) { return s.provisioner.DeleteResource(ctx, tenantID, res) })
}
