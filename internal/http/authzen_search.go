package http

import (
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// Search page sizes: a request without page.limit (or with 0) gets
// defaultPageSize results; larger limits are cut to maxPageSize.
const (
	defaultPageSize = 1000
	maxPageSize     = 1000
)

type azPage struct {
	Token string `json:"token"`
	Limit *int   `json:"limit"`
}

type azSearchRequest struct {
	Subject  *azEntity `json:"subject"`
	Action   *azAction `json:"action"`
	Resource *azEntity `json:"resource"`
	Context  azContext `json:"context"`
	Page     *azPage   `json:"page"`
}

type azPageAnswer struct {
	NextToken string `json:"next_token"`
	Count     int    `json:"count"`
	Total     int    `json:"total"`
}

// azSearchAnswer puts page first, as the specification recommends.
type azSearchAnswer struct {
	Page    azPageAnswer   `json:"page"`
	Context map[string]any `json:"context,omitempty"`
	Results []any          `json:"results"`
}

type azEntityRef struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type azActionRef struct {
	Name string `json:"name"`
}

// pageToken is the opaque page.token: where the next page starts, the
// revision the first page was read at (later pages read at exactly that
// revision, so that pages do not skip or repeat results), and a fingerprint
// of the request, which must not change between pages.
type pageToken struct {
	Offset   int    `json:"o"`
	Revision string `json:"r"`
	Request  string `json:"h"`
}

// paging is one request's position in a result set.
type paging struct {
	offset, limit int
	revision      string // from the token; empty on a first page
	fingerprint   string
}

// azPaging validates page and the token against the request's fingerprint
// (the inputs that decide the results, joined).
func azPaging(p *azPage, inputs ...string) (paging, error) {
	pg := paging{limit: defaultPageSize}
	limit := ""
	if p != nil && p.Limit != nil {
		if *p.Limit < 0 {
			return pg, authz.Errorf(authz.EINVALID, "page.limit must be a non-negative integer")
		}
		if *p.Limit > 0 {
			pg.limit = min(*p.Limit, maxPageSize)
		}
		limit = strconv.Itoa(*p.Limit)
	}
	sum := sha256.Sum256([]byte(strings.Join(append(inputs, limit), "\x00")))
	pg.fingerprint = hex.EncodeToString(sum[:12])
	if p == nil || p.Token == "" {
		return pg, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(p.Token)
	var t pageToken
	if err != nil || json.Unmarshal(raw, &t) != nil || t.Offset < 0 {
		return pg, authz.Errorf(authz.EINVALID, "page.token is not a token this PDP issued")
	}
	if t.Request != pg.fingerprint {
		return pg, authz.Errorf(authz.EINVALID, "page.token belongs to a different search: send the subject, action, resource, context.consistency_token and page.limit of the first request")
	}
	pg.offset, pg.revision = t.Offset, t.Revision
	return pg, nil
}

// at is the snapshot a page reads: the first page's revision for later pages,
// else at least as fresh as the caller's consistency token.
func (pg paging) at(consistencyToken string) authz.Snapshot {
	if pg.revision != "" {
		return authz.Snapshot{Token: pg.revision, Exact: true}
	}
	return authz.Snapshot{Token: consistencyToken}
}

// cut returns the page of ids and the page object; revision is what the next
// page must read at.
func (pg paging) cut(ids []string, revision string) ([]string, azPageAnswer) {
	total := len(ids)
	start := min(pg.offset, total)
	end := min(start+pg.limit, total)
	page := azPageAnswer{Count: end - start, Total: total}
	if end < total {
		raw, _ := json.Marshal(pageToken{Offset: end, Revision: revision, Request: pg.fingerprint})
		page.NextToken = base64.RawURLEncoding.EncodeToString(raw)
	}
	return ids[start:end], page
}

// refs cuts this page out of a search's answer and names each id as an
// entity of type typ; revision is what the answer and the next page read at.
func (pg paging) refs(found authz.SearchResult, typ string) (ids []string, page azPageAnswer, results []any, revision string) {
	revision = cmp.Or(found.CheckedAt, pg.revision)
	ids, page = pg.cut(found.IDs, revision)
	results = make([]any, len(ids))
	for i, id := range ids {
		results[i] = azEntityRef{Type: typ, ID: id}
	}
	return ids, page, results, revision
}

// emptySearch is the answer for a type authzd does not know: no entity of it
// can match, which the certification scenario wants as an empty result, not
// an error.
func emptySearch(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, azSearchAnswer{Results: []any{}})
}

// present checks that an input entity has what every request needs before
// its values are looked at: missing parts are 400, unknown types are not.
func present(field string, e *azEntity, needID bool) error {
	switch {
	case e == nil:
		return authz.Errorf(authz.EINVALID, "%s is required", field)
	case e.Type == "":
		return authz.Errorf(authz.EINVALID, "%s.type is required", field)
	case needID && e.ID == "":
		return authz.Errorf(authz.EINVALID, "%s.id is required", field)
	}
	return nil
}

func (s *Server) knownResourceType(t string) bool {
	return t == authz.ResourceTypeTenant || slices.Contains(s.model.ResourceTypes(), t)
}

func knownSubjectType(t string) bool {
	return t == authz.SubjectUser || t == authz.SubjectServiceAccount
}

// searchEvent is the audit row of one answered search page.
func (s *Server) searchEvent(r *http.Request, action string, key *authz.Key, actor, tenantID string, res *authz.Resource, resourceType string, found []string, total int, checkedAt string) authz.Event {
	e := authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: action, ActorUserID: actor, TenantID: tenantID,
		ResourceType: resourceType, Decision: authz.DecisionDenied, ZedToken: checkedAt, DecisionID: newDecisionID(),
		Client: clientName(tokenFrom(r.Context())), RequestID: RequestID(r.Context()),
		Details: map[string]any{"api": "authzen", "results": found, "total": total},
	}
	if key != nil {
		e.Module, e.Permission = key.Module(), key.String()
	}
	if res != nil {
		e.ResourceType, e.ResourceID = res.Type, res.ID
	}
	if len(found) > 0 {
		e.Decision = authz.DecisionAllowed
	}
	return e
}

// answerSearch commits the page's audit row, then answers.
func (s *Server) answerSearch(w http.ResponseWriter, r *http.Request, e authz.Event, page azPageAnswer, results []any) {
	if err := s.record(r, e); err != nil {
		s.Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, azSearchAnswer{
		Page: page, Results: results,
		Context: map[string]any{"decision_id": e.DecisionID, "checked_at": e.ZedToken},
	})
}

// azSearchScope reads what subject and action searches are scoped by: the
// resource (a tenant, or one resource of a tenant; resID names it for the
// page token) and the caller's consistency token.
func (s *Server) azSearchScope(b azSearchRequest) (tenantID string, res *authz.Resource, resID, token string, err error) {
	if tenantID, res, err = s.azResource("resource", b.Resource); err != nil {
		return "", nil, "", "", err
	}
	if token, err = b.Context.consistencyToken("context"); err != nil {
		return "", nil, "", "", err
	}
	if res != nil {
		resID = res.Type + ":" + res.ID
	}
	return tenantID, res, resID, token, nil
}

// searchNeeds says what a search request must carry besides the subject's and
// the resource's types.
type searchNeeds struct {
	subjectID, resourceID bool
	key                   bool // the action names a key
}

// readSearch reads a search request: its body, the subject and resource, the
// action's key if the search needs one, and the subject itself if the search
// names one (subjectID). ok is false when it has answered instead: an error
// for the caller's mistake, or an empty result for a type authzd does not know.
func (s *Server) readSearch(w http.ResponseWriter, r *http.Request, needs searchNeeds) (b azSearchRequest, key authz.Key, subj authz.Subject, ok bool) {
	err := decodeOpen(r, &b)
	if err == nil {
		err = cmp.Or(present("subject", b.Subject, needs.subjectID), present("resource", b.Resource, needs.resourceID))
	}
	if err == nil && needs.key {
		key, err = s.azKey("action", b.Action)
	}
	if err != nil {
		s.Error(w, r, err)
		return b, key, subj, false
	}
	if !knownSubjectType(b.Subject.Type) || !s.knownResourceType(b.Resource.Type) {
		emptySearch(w)
		return b, key, subj, false
	}
	if needs.subjectID {
		if subj, err = azSubject("subject", b.Subject); err != nil {
			s.Error(w, r, err)
			return b, key, subj, false
		}
	}
	return b, key, subj, true
}

// handleAZSearchSubject: who holds a key on a resource (or tenant-wide). It
// and handleAZSearchResource share their shape (page, look up, audit, answer)
// but not their lookups, page tokens or audit rows; a shared body would take
// more parameters than it saves lines.
func (s *Server) handleAZSearchSubject(w http.ResponseWriter, r *http.Request) {
	b, key, _, ok := s.readSearch(w, r, searchNeeds{resourceID: true, key: true})
	if !ok {
		return
	}
	tenantID, res, resID, token, err := s.azSearchScope(b)
	if err == nil {
		err = reaches(r, tenantID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	pg, err := azPaging(b.Page, "subject", b.Subject.Type, key.String(), tenantID, resID, token)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	found, err := s.searcher.LookupSubjects(r.Context(), authz.SubjectSearch{
		TenantID: tenantID, Key: key, Resource: res, SubjectKind: b.Subject.Type, At: pg.at(token),
	})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ids, page, results, revision := pg.refs(found, b.Subject.Type)
	e := s.searchEvent(r, "authzen.search.subject", &key, "", tenantID, res, "", ids, page.Total, revision)
	e.Details["subject_type"] = b.Subject.Type
	s.answerSearch(w, r, e, page, results)
}

// handleAZSearchResource: on which resources of a type (tenants, or the
// bunkers or bindings of one tenant) a subject holds a key.
func (s *Server) handleAZSearchResource(w http.ResponseWriter, r *http.Request) {
	b, key, subj, ok := s.readSearch(w, r, searchNeeds{subjectID: true, key: true})
	if !ok {
		return
	}
	tenantID := ""
	if b.Resource.Type != authz.ResourceTypeTenant {
		var err error
		if tenantID, err = azTenantOf("resource", b.Resource); err == nil {
			err = reaches(r, tenantID)
		}
		if err != nil {
			s.Error(w, r, err)
			return
		}
	}
	token, err := b.Context.consistencyToken("context")
	if err != nil {
		s.Error(w, r, err)
		return
	}
	pg, err := azPaging(b.Page, "resource", subj.String(), subj.Kind, key.String(), b.Resource.Type, tenantID, token)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	found, err := s.searcher.LookupResources(r.Context(), authz.ResourceSearch{
		TenantID: tenantID, Subject: subj, Key: key, ResourceType: b.Resource.Type, At: pg.at(token),
	})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	if tok := tokenFrom(r.Context()); b.Resource.Type == authz.ResourceTypeTenant && tok.Scoped() {
		// Tenants the token does not reach are not found.
		found.IDs = slices.DeleteFunc(found.IDs, func(id string) bool { return tok.Reaches(id) != nil })
	}
	ids, page, results, revision := pg.refs(found, b.Resource.Type)
	e := s.searchEvent(r, "authzen.search.resource", &key, subj.String(), tenantID, nil, b.Resource.Type, ids, page.Total, revision)
	s.answerSearch(w, r, e, page, results)
}

// handleAZSearchAction: which keys a subject holds on a resource (or
// tenant-wide), with one bulk check over every key that applies to it.
func (s *Server) handleAZSearchAction(w http.ResponseWriter, r *http.Request) {
	b, _, subj, ok := s.readSearch(w, r, searchNeeds{subjectID: true, resourceID: true})
	if !ok {
		return
	}
	tenantID, res, resID, token, err := s.azSearchScope(b)
	if err == nil {
		err = reaches(r, tenantID)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	pg, err := azPaging(b.Page, "action", subj.String(), subj.Kind, tenantID, resID, token)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	applies := s.model.KeysOn(b.Resource.Type)
	var checks []authz.Check
	for _, k := range s.keys {
		if slices.Contains(applies, k.Key.Relation()) {
			// Later pages read at least as fresh as the first one: a bulk check
			// takes no exact snapshot, and the key list is short.
			checks = append(checks, authz.Check{TenantID: tenantID, Subject: subj, Key: k.Key, Resource: res,
				ConsistencyToken: cmp.Or(pg.revision, token)})
		}
	}
	var held []string
	revision := pg.revision
	if len(checks) > 0 {
		decisions, err := s.checker.CheckBulk(r.Context(), checks)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		for i, d := range decisions {
			if d.Err != nil {
				s.Error(w, r, d.Err) // fail closed: a partial list would misstate what the subject holds
				return
			}
			revision = cmp.Or(pg.revision, d.CheckedAt)
			if d.Allowed {
				held = append(held, checks[i].Key.String())
			}
		}
	}
	names, page := pg.cut(held, revision)
	results := make([]any, len(names))
	for i, n := range names {
		results[i] = azActionRef{Name: n}
	}
	e := s.searchEvent(r, "authzen.search.action", nil, subj.String(), tenantID, res, "", names, page.Total, revision)
	s.answerSearch(w, r, e, page, results)
}
