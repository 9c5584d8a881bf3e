package http

// The OpenID AuthZEN Authorization API 1.0 (HTTPS JSON binding) on top of
// authzd's model. Mapping:
//
//	subject  {"type": "user" | "service_account", "id"}
//	action   {"name": "<permission key>"}
//	resource {"type": "tenant", "id": "<tenant_id>"} for a tenant-wide key, or
//	         {"type": "bunker" | "binding", "id", "properties": {"tenant_id"}}
//	context  {"consistency_token"} is honoured like a check's consistency_token
//
// Every decision is a check: the same SpiceDB question, the same audit row,
// committed before the answer leaves. Unknown fields are ignored, as the
// specification demands of receivers.

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// maxEvaluations bounds an evaluations request, like a bulk check.
const maxEvaluations = maxBulkItems

// Evaluation semantics of an evaluations request.
const (
	semanticExecuteAll    = "execute_all"
	semanticDenyOnDeny    = "deny_on_first_deny"
	semanticPermitOnAllow = "permit_on_first_permit"
)

type azEntity struct {
	Type       string                     `json:"type"`
	ID         string                     `json:"id"`
	Properties map[string]json.RawMessage `json:"properties"`
}

type azAction struct {
	Name       string                     `json:"name"`
	Properties map[string]json.RawMessage `json:"properties"`
}

// azContext is an AuthZEN context object; only consistency_token means
// something to authzd.
type azContext map[string]json.RawMessage

type azEvaluation struct {
	Subject  *azEntity `json:"subject"`
	Action   *azAction `json:"action"`
	Resource *azEntity `json:"resource"`
	Context  azContext `json:"context"`
}

type azEvaluationsRequest struct {
	azEvaluation
	Evaluations []azEvaluation             `json:"evaluations"`
	Options     map[string]json.RawMessage `json:"options"`
}

type azDecision struct {
	Decision bool           `json:"decision"`
	Context  map[string]any `json:"context,omitempty"`
}

type azItemError struct {
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// requireJSON enforces the binding's "Requests MUST include a Content-Type
// header with the value application/json".
func (s *Server) requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mt != "application/json" {
			s.Error(w, r, authz.Errorf(authz.EINVALID, "Content-Type must be application/json"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// azSubject maps an AuthZEN subject onto a subject of authzd's model.
func azSubject(field string, e *azEntity) (authz.Subject, error) {
	if e == nil {
		return authz.Subject{}, authz.Errorf(authz.EINVALID, "%s is required", field)
	}
	if e.Type == "" {
		return authz.Subject{}, authz.Errorf(authz.EINVALID, "%s.type is required", field)
	}
	if e.Type != authz.SubjectUser && e.Type != authz.SubjectServiceAccount {
		return authz.Subject{}, authz.Errorf(authz.EINVALID, "%s.type %q is not a subject type of authzd (user, service_account)", field, truncated(e.Type))
	}
	if err := authz.ValidateID(field+".id", e.ID); err != nil {
		return authz.Subject{}, err
	}
	return authz.Subject{Kind: e.Type, ID: e.ID}, nil
}

// azTenantOf reads the tenant of a typed resource from its properties.
func azTenantOf(field string, e *azEntity) (string, error) {
	raw, ok := e.Properties["tenant_id"]
	if !ok {
		return "", authz.Errorf(authz.EINVALID, "%s.properties.tenant_id is required for resource type %q", field, e.Type)
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", authz.Errorf(authz.EINVALID, "%s.properties.tenant_id must be a string", field)
	}
	return t, authz.ValidateID(field+".properties.tenant_id", t)
}

// azResource maps an AuthZEN resource onto a tenant and, for a typed
// resource, one of its resources.
func (s *Server) azResource(field string, e *azEntity) (string, *authz.Resource, error) {
	if e == nil {
		return "", nil, authz.Errorf(authz.EINVALID, "%s is required", field)
	}
	if e.Type == "" {
		return "", nil, authz.Errorf(authz.EINVALID, "%s.type is required", field)
	}
	if e.Type == authz.ResourceTypeTenant {
		return e.ID, nil, authz.ValidateID(field+".id", e.ID)
	}
	if !slices.Contains(s.model.ResourceTypes(), e.Type) {
		return "", nil, authz.Errorf(authz.EINVALID, "%s.type %q is not a resource type of authzd (tenant, %v)", field, truncated(e.Type), s.model.ResourceTypes())
	}
	if e.ID == "" {
		return "", nil, authz.Errorf(authz.EINVALID, "%s.id is required", field)
	}
	if err := authz.ValidateID(field+".id", e.ID); err != nil {
		return "", nil, err
	}
	tenantID, err := azTenantOf(field, e)
	if err != nil {
		return "", nil, err
	}
	return tenantID, &authz.Resource{Type: e.Type, ID: e.ID}, nil
}

func (s *Server) azKey(field string, a *azAction) (authz.Key, error) {
	if a == nil {
		return authz.Key{}, authz.Errorf(authz.EINVALID, "%s is required", field)
	}
	return s.key(field+".name", a.Name)
}

// consistencyToken reads context.consistency_token.
func (c azContext) consistencyToken(field string) (string, error) {
	raw, ok := c["consistency_token"]
	if !ok {
		return "", nil
	}
	var t string
	if err := json.Unmarshal(raw, &t); err != nil {
		return "", authz.Errorf(authz.EINVALID, "%s.consistency_token must be a string", field)
	}
	if len(t) > 1024 {
		return "", authz.Errorf(authz.EINVALID, "%s.consistency_token is too long", field)
	}
	return t, nil
}

// azCheck maps an evaluation onto a check; prefix names it in errors.
func (s *Server) azCheck(prefix string, ev azEvaluation) (authz.Check, error) {
	var c authz.Check
	var err error
	if c.Subject, err = azSubject(prefix+"subject", ev.Subject); err != nil {
		return c, err
	}
	if c.Key, err = s.azKey(prefix+"action", ev.Action); err != nil {
		return c, err
	}
	if c.TenantID, c.Resource, err = s.azResource(prefix+"resource", ev.Resource); err != nil {
		return c, err
	}
	c.ConsistencyToken, err = ev.Context.consistencyToken(prefix + "context")
	return c, err
}

func truncated(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// azAnswer is the decision object of one audited check.
func azAnswer(d authz.Decision, e authz.Event) azDecision {
	return azDecision{Decision: d.Allowed, Context: map[string]any{"decision_id": e.DecisionID, "checked_at": d.CheckedAt}}
}

func (s *Server) handleAZEvaluation(w http.ResponseWriter, r *http.Request) {
	var ev azEvaluation
	if err := decodeOpen(r, &ev); err != nil {
		s.Error(w, r, err)
		return
	}
	s.azEvaluateOne(w, r, ev)
}

// azEvaluateOne answers one evaluation exactly like POST /v1/permissions/check.
func (s *Server) azEvaluateOne(w http.ResponseWriter, r *http.Request, ev azEvaluation) {
	c, err := s.azCheck("", ev)
	if err == nil {
		err = reaches(r, c.TenantID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	s.checkOne(w, r, c, func(d authz.Decision, e authz.Event) any { return azAnswer(d, e) })
}

// merged applies the request's top-level defaults to one evaluation: each of
// subject, action, resource and context is inherited whole when the item
// omits it, and replaced whole when the item has it.
func (b azEvaluationsRequest) merged(item azEvaluation) azEvaluation {
	if item.Subject == nil {
		item.Subject = b.Subject
	}
	if item.Action == nil {
		item.Action = b.Action
	}
	if item.Resource == nil {
		item.Resource = b.Resource
	}
	if item.Context == nil {
		item.Context = b.Context
	}
	return item
}

func (b azEvaluationsRequest) semantic() (string, error) {
	raw, ok := b.Options["evaluations_semantic"]
	if !ok {
		return semanticExecuteAll, nil
	}
	var sem string
	if err := json.Unmarshal(raw, &sem); err != nil {
		return "", authz.Errorf(authz.EINVALID, "options.evaluations_semantic must be a string")
	}
	switch sem {
	case semanticExecuteAll, semanticDenyOnDeny, semanticPermitOnAllow:
		return sem, nil
	}
	return "", authz.Errorf(authz.EINVALID, "options.evaluations_semantic %q must be one of %s, %s, %s",
		truncated(sem), semanticExecuteAll, semanticDenyOnDeny, semanticPermitOnAllow)
}

type azEvaluationsAnswer struct {
	Evaluations []azDecision `json:"evaluations"`
}

// handleAZEvaluations answers the items in order. Items that cannot be
// evaluated (a missing or unknown subject, action or resource) are denied with
// the error in their context; they are not decisions and leave no audit row,
// like the failed items of a bulk check. Every decided item returned is
// audited like a check. With a short-circuit semantic the answer ends at the
// first deny (or permit), and only the items answered are audited.
func (s *Server) handleAZEvaluations(w http.ResponseWriter, r *http.Request) {
	var b azEvaluationsRequest
	if err := decodeOpen(r, &b); err != nil {
		s.Error(w, r, err)
		return
	}
	sem, err := b.semantic()
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if len(b.Evaluations) == 0 {
		// The specification's backwards-compatible form: a single evaluation.
		s.azEvaluateOne(w, r, b.azEvaluation)
		return
	}
	if len(b.Evaluations) > maxEvaluations {
		s.Error(w, r, authz.Errorf(authz.EINVALID, "evaluations holds %d items; the limit is %d", len(b.Evaluations), maxEvaluations))
		return
	}

	checks, decisions, errs, err := s.azDecide(r.Context(), tokenFrom(r.Context()), b)
	if err != nil {
		s.Error(w, r, err) // no decision at all: never a partial yes
		return
	}

	now := time.Now()
	answers := make([]azDecision, 0, len(checks))
	events := make([]authz.Event, 0, len(checks))
	for i := range checks {
		var a azDecision
		if errs[i] != nil {
			a = s.azItemError(r, i, errs[i])
		} else {
			e := s.checkEvent(r, checks[i], decisions[i], now)
			events = append(events, e)
			a = azAnswer(decisions[i], e)
		}
		stop := (sem == semanticDenyOnDeny && !a.Decision) || (sem == semanticPermitOnAllow && a.Decision)
		if stop && i < len(checks)-1 {
			if a.Context == nil {
				a.Context = map[string]any{}
			}
			a.Context["reason"] = sem
		}
		answers = append(answers, a)
		if stop {
			break
		}
	}
	s.answerDecisions(w, r, azEvaluationsAnswer{Evaluations: answers}, events...)
}

// azDecide validates and checks the items of an evaluations request. An item
// that cannot be evaluated gets its error in errs; an error that leaves no
// item decided (SpiceDB unavailable) is returned. An item in a tenant the
// token does not reach gets its forbidden error and is not asked of SpiceDB.
func (s *Server) azDecide(ctx context.Context, tok authz.Token, b azEvaluationsRequest) ([]authz.Check, []authz.Decision, []error, error) {
	checks := make([]authz.Check, len(b.Evaluations))
	errs := make([]error, len(b.Evaluations))
	// Items with the same consistency token go to SpiceDB together: one
	// CheckBulkPermissions takes one consistency.
	groups := map[string][]int{}
	var order []string
	for i, item := range b.Evaluations {
		c, err := s.azCheck("", b.merged(item))
		if err == nil {
			err = tok.Reaches(c.TenantID)
		}
		if err != nil {
			errs[i] = err
			continue
		}
		checks[i] = c
		if _, ok := groups[c.ConsistencyToken]; !ok {
			order = append(order, c.ConsistencyToken)
		}
		groups[c.ConsistencyToken] = append(groups[c.ConsistencyToken], i)
	}
	decisions := make([]authz.Decision, len(checks))
	for _, token := range order {
		idx := groups[token]
		batch := make([]authz.Check, len(idx))
		for j, i := range idx {
			batch[j] = checks[i]
		}
		ds, err := s.checker.CheckBulk(ctx, batch)
		if authz.ErrorCode(err) == authz.EINVALID {
			// One item is wrong for SpiceDB (a key that does not apply to the
			// resource type, a malformed token): ask item by item so that each
			// gets its own answer or error.
			for _, i := range idx {
				d, err := s.checker.Check(ctx, checks[i])
				switch {
				case authz.ErrorCode(err) == authz.EINVALID:
					errs[i] = err
				case err != nil:
					return nil, nil, nil, err
				default:
					decisions[i] = d
				}
			}
			continue
		}
		if err != nil {
			return nil, nil, nil, err
		}
		for j, i := range idx {
			decisions[i], errs[i] = ds[j], ds[j].Err
		}
	}
	return checks, decisions, errs, nil
}

// azItemError is the deny of an item that has no decision, with the
// specification's per-item error in its context. Internal details are logged,
// never shown.
func (s *Server) azItemError(r *http.Request, i int, err error) azDecision {
	code := authz.ErrorCode(err)
	status, ok := statuses[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	if code == authz.EINTERNAL || code == authz.EUNAVAILABLE {
		s.logger.WarnContext(r.Context(), "evaluation item without decision", "item", i, "err", err, "request_id", RequestID(r.Context()))
	}
	return azDecision{Context: map[string]any{"error": azItemError{Status: status, Message: authz.ErrorMessage(err)}}}
}
