package http

import (
	"bufio"
	"net/http"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// handleExport streams the provisioning state at one revision as a record
// document, in the order an import takes, ids sorted: two exports of one
// revision are the same bytes. Its audit row, committed before the first
// byte, counts what it leaves out.
func (s *Server) handleExport(w http.ResponseWriter, r *http.Request) {
	tenantID := r.URL.Query().Get("tenant_id")
	if tenantID != "" {
		if err := authz.ValidateID("tenant_id", tenantID); err != nil {
			s.Error(w, r, err)
			return
		}
	}
	ctx, cancel := s.extendDeadlines(w, r)
	defer cancel()
	r = r.WithContext(ctx)
	world, err := s.transfer.ReadWorld(ctx, tenantID)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if tenantID != "" && !world.HasTenant(tenantID) {
		s.Error(w, r, authz.Errorf(authz.ENOTFOUND, "tenant %q does not exist", tenantID))
		return
	}
	records, unexpressed := world.Records()
	unnamed, err := s.nameRoles(r, records)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	e := authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: "export", ActorUserID: actorFrom(ctx),
		TenantID: tenantID, Decision: authz.DecisionAllowed, ZedToken: world.Revision(), DecisionID: newDecisionID(),
		Client: clientName(tokenFrom(ctx)), RequestID: RequestID(ctx),
		Details: map[string]any{"records": len(records), "unnamed_roles": unnamed, "unexpressed_relationships": unexpressed},
	}
	if err := s.record(r, e); err != nil {
		s.Error(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("X-Zed-Token", world.Revision())
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 512)
	for _, rec := range records {
		line = append(rec.AppendJSON(line[:0]), '\n')
		if _, err := bw.Write(line); err != nil {
			// The status is sent: the caller sees a truncated document.
			s.logger.WarnContext(ctx, "export: write", "err", err, "request_id", RequestID(ctx))
			return
		}
	}
	_ = bw.Flush()
}

// nameRoles fills in the names of role records from their role.put audit
// rows; a role whose rows retention dropped is named by its id. It returns
// how many were.
func (s *Server) nameRoles(r *http.Request, records []authz.Record) (int, error) {
	byTenant := map[string][]int{}
	var order []string
	for i, rec := range records {
		if rec.Kind != authz.KindRole {
			continue
		}
		if byTenant[rec.TenantID] == nil {
			order = append(order, rec.TenantID)
		}
		byTenant[rec.TenantID] = append(byTenant[rec.TenantID], i)
	}
	unnamed := 0
	for _, tenantID := range order {
		idx := byTenant[tenantID]
		ids := make([]string, len(idx))
		for j, i := range idx {
			ids[j] = records[i].RoleID
		}
		names, err := s.store.RoleNames(r.Context(), tenantID, ids)
		if err != nil {
			return 0, err
		}
		for _, i := range idx {
			name, ok := names[records[i].RoleID]
			if !ok {
				name = records[i].RoleID
				unnamed++
			}
			records[i].Name = name
		}
	}
	return unnamed, nil
}
