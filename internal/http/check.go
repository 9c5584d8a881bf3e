package http

import (
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/latency"
)

// maxBulkItems bounds a bulk check.
const maxBulkItems = 100

type resourceBody struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type checkBody struct {
	TenantID         string        `json:"tenant_id"`
	UserID           string        `json:"user_id"`
	Permission       string        `json:"permission"`
	Resource         *resourceBody `json:"resource,omitempty"`
	Action           string        `json:"action,omitempty"`
	ConsistencyToken string        `json:"consistency_token,omitempty"`
	// LegacyAllowed is the legacy system's answer to the same check (shadow
	// mode, see shadow.go); check and check_bulk only.
	LegacyAllowed *bool `json:"legacy_allowed,omitempty"`
}

type checkAnswer struct {
	Allowed    bool         `json:"allowed"`
	CheckedAt  string       `json:"checked_at"`
	DecisionID string       `json:"decision_id"`
	Error      *errorDetail `json:"error,omitempty"`
}

// key parses a permission key and demands that a manifest defines it.
func (s *Server) key(field, raw string) (authz.Key, error) {
	if raw == "" {
		return authz.Key{}, authz.Errorf(authz.EINVALID, "%s is required", field)
	}
	if k, ok := s.known[raw]; ok {
		return k, nil
	}
	if _, err := authz.ParseKey(raw); err != nil {
		return authz.Key{}, authz.Errorf(authz.EINVALID, "%s: %s", field, authz.ErrorMessage(err))
	}
	return authz.Key{}, authz.Errorf(authz.EINVALID, "%s: unknown permission key %q", field, raw)
}

// toCheck validates a check body at the edge.
func (s *Server) toCheck(b checkBody) (authz.Check, error) {
	c := authz.Check{TenantID: b.TenantID, Action: b.Action, ConsistencyToken: b.ConsistencyToken}
	if err := authz.ValidateID("tenant_id", b.TenantID); err != nil {
		return c, err
	}
	subj, err := authz.ParseSubject("user_id", b.UserID)
	if err != nil {
		return c, err
	}
	c.Subject = subj
	if c.Key, err = s.key("permission", b.Permission); err != nil {
		return c, err
	}
	if b.Resource != nil {
		if b.Resource.Type == "" {
			return c, authz.Errorf(authz.EINVALID, "resource.type is required")
		}
		if err := authz.ValidateID("resource.id", b.Resource.ID); err != nil {
			return c, err
		}
		c.Resource = &authz.Resource{Type: b.Resource.Type, ID: b.Resource.ID}
	}
	if len(b.Action) > 256 {
		return c, authz.Errorf(authz.EINVALID, "action is %d bytes; the limit is 256", len(b.Action))
	}
	if len(b.ConsistencyToken) > 1024 {
		return c, authz.Errorf(authz.EINVALID, "consistency_token is too long")
	}
	// Whether the key applies to the resource type is decided by the graph
	// adapter when it resolves the check, before anything is sent to SpiceDB.
	return c, nil
}

// decodeCheck reads and validates a check body (POST check and explain).
func (s *Server) decodeCheck(r *http.Request) (authz.Check, error) {
	var b checkBody
	if err := decode(r, &b, false); err != nil {
		return authz.Check{}, err
	}
	if b.LegacyAllowed != nil {
		return authz.Check{}, authz.Errorf(authz.EINVALID, "legacy_allowed is taken by checks only")
	}
	return s.toCheck(b)
}

// checkEvent builds the audit row of a decision.
func (s *Server) checkEvent(r *http.Request, c authz.Check, d authz.Decision, now time.Time) authz.Event {
	action := c.Action
	if action == "" {
		action = c.Key.String()
	}
	e := authz.Event{
		OccurredAt: now, Module: c.Key.Module(), Action: action, ActorUserID: c.Subject.String(),
		TenantID: c.TenantID, Permission: c.Key.String(), Decision: authz.DecisionDenied,
		ZedToken: d.CheckedAt, DecisionID: newDecisionID(), Client: clientName(tokenFrom(r.Context())),
		RequestID: RequestID(r.Context()),
	}
	if d.Allowed {
		e.Decision = authz.DecisionAllowed
	}
	if c.Resource != nil {
		e.ResourceType, e.ResourceID = c.Resource.Type, c.Resource.ID
	}
	if d.Source != "" {
		// Where the answer came from; zed_token is the revision it is correct at.
		e.Details = map[string]any{"source": d.Source}
	}
	return e
}

func newDecisionID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// record commits the audit rows; only then may the decisions leave.
func (s *Server) record(r *http.Request, events ...authz.Event) error {
	if s.noAudit {
		return nil
	}
	return s.audit.Record(r.Context(), withVia(r.Context(), events)...)
}

// answerDecisions commits the decisions' audit rows, counts them, and only
// then answers body with 200. Without the rows the answer is the error, never
// a decision.
func (s *Server) answerDecisions(w http.ResponseWriter, r *http.Request, body any, events ...authz.Event) {
	began := time.Now()
	if err := s.record(r, events...); err != nil {
		s.Error(w, r, err)
		return
	}
	if s.metrics != nil && !s.noAudit {
		s.metrics.AuditWait(time.Since(began))
	}
	for _, e := range events {
		s.countDecision(e)
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *Server) countDecision(e authz.Event) {
	if s.metrics != nil {
		s.metrics.Decision(e.Module, e.Decision == authz.DecisionAllowed)
	}
}

func (s *Server) handleCheck(w http.ResponseWriter, r *http.Request) {
	var b checkBody
	if err := decode(r, &b, false); err != nil {
		s.Error(w, r, err)
		return
	}
	c, err := s.toCheck(b)
	if err == nil {
		err = reaches(r, c.TenantID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	latency.From(r.Context()).Mark(latency.Decoded)
	s.checkOne(w, r, c, func(d authz.Decision, e authz.Event) any {
		return checkAnswer{Allowed: d.Allowed, CheckedAt: d.CheckedAt, DecisionID: e.DecisionID}
	}, shadow(b.LegacyAllowed))
}

// checkOne answers one validated check: the decision, its audit row, then
// the answer body answer makes of them.
func (s *Server) checkOne(w http.ResponseWriter, r *http.Request, c authz.Check, answer func(authz.Decision, authz.Event) any, annotate ...func(*authz.Event)) {
	began := time.Now()
	d, err := s.checker.Check(r.Context(), c)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	now := time.Now()
	latency.From(r.Context()).MarkAt(latency.Decided, now)
	if s.metrics != nil {
		s.metrics.Decide(d.Source, now.Sub(began))
	}
	e := s.checkEvent(r, c, d, now)
	for _, a := range annotate {
		a(&e)
	}
	s.answerDecisions(w, r, answer(d, e), e)
}

type bulkBody struct {
	Items []checkBody `json:"items"`
}

type bulkAnswer struct {
	Results []checkAnswer `json:"results"`
}

func (s *Server) handleCheckBulk(w http.ResponseWriter, r *http.Request) {
	var b bulkBody
	if err := decode(r, &b, false); err != nil {
		s.Error(w, r, err)
		return
	}
	if len(b.Items) == 0 || len(b.Items) > maxBulkItems {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "items must hold 1 to %d checks; got %d", maxBulkItems, len(b.Items)))
		return
	}
	checks := make([]authz.Check, len(b.Items))
	// An item in a tenant the token does not reach is answered not allowed,
	// with its error, and never asked of SpiceDB.
	decisions := make([]authz.Decision, len(b.Items))
	var asked []int
	for i, item := range b.Items {
		c, err := s.toCheck(item)
		if err != nil {
			s.Error(w, r, authz.Errorf(authz.ErrorCode(err), "items[%d]: %s", i, authz.ErrorMessage(err)))
			return
		}
		checks[i] = c
		if decisions[i].Err = reaches(r, c.TenantID); decisions[i].Err == nil {
			asked = append(asked, i)
		}
	}
	if len(asked) > 0 {
		batch := make([]authz.Check, len(asked))
		for j, i := range asked {
			batch[j] = checks[i]
		}
		got, err := s.checker.CheckBulk(r.Context(), batch)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		for j, i := range asked {
			decisions[i] = got[j]
		}
	}
	now := time.Now()
	results := make([]checkAnswer, len(checks))
	events := make([]authz.Event, 0, len(checks))
	for i, d := range decisions {
		if d.Err != nil {
			// No decision for this item: it is not allowed, and there is nothing to audit.
			results[i] = checkAnswer{Error: &errorDetail{Code: authz.ErrorCode(d.Err), Message: authz.ErrorMessage(d.Err)}}
			continue
		}
		e := s.checkEvent(r, checks[i], d, now)
		shadow(b.Items[i].LegacyAllowed)(&e)
		events = append(events, e)
		results[i] = checkAnswer{Allowed: d.Allowed, CheckedAt: d.CheckedAt, DecisionID: e.DecisionID}
	}
	s.answerDecisions(w, r, bulkAnswer{Results: results}, events...)
}

type effectiveAnswer struct {
	Permissions []string `json:"permissions"`
	CheckedAt   string   `json:"checked_at"`
	DecisionID  string   `json:"decision_id"`
}

// handleEffective answers every key the subject holds in the tenant with one
// CheckBulkPermissions call over all keys.
func (s *Server) handleEffective(w http.ResponseWriter, r *http.Request) {
	v, subj, err := pathUser(r, "tenant_id")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	tenantID := v[0]
	token := r.URL.Query().Get("consistency_token")
	checks := make([]authz.Check, len(s.keys))
	for i, k := range s.keys {
		checks[i] = authz.Check{TenantID: tenantID, Subject: subj, Key: k.Key, ConsistencyToken: token}
	}
	decisions, err := s.checker.CheckBulk(r.Context(), checks)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	held := []string{}
	checkedAt := ""
	for i, d := range decisions {
		if d.Err != nil {
			// Fail closed: a partial answer would understate or misstate what the user holds.
			s.Error(w, r, d.Err)
			return
		}
		checkedAt = d.CheckedAt
		if d.Allowed {
			held = append(held, checks[i].Key.String())
		}
	}
	e := authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: "permissions.effective",
		ActorUserID: subj.String(), TenantID: tenantID, Decision: authz.DecisionDenied, ZedToken: checkedAt,
		DecisionID: newDecisionID(), Client: clientName(tokenFrom(r.Context())), RequestID: RequestID(r.Context()),
		Details: map[string]any{"permissions": held},
	}
	if len(held) > 0 {
		e.Decision = authz.DecisionAllowed
	}
	if err := s.record(r, e); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, effectiveAnswer{Permissions: held, CheckedAt: checkedAt, DecisionID: e.DecisionID})
}

type keyAnswer struct {
	Key         string `json:"key"`
	Module      string `json:"module"`
	Description string `json:"description"`
}

func (s *Server) handleKeys(w http.ResponseWriter, r *http.Request) {
	out := make([]keyAnswer, len(s.keys))
	for i, k := range s.keys {
		out[i] = keyAnswer{Key: k.Key.String(), Module: k.Key.Module(), Description: k.Description}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}
