package http

import (
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// eventAnswer is an audit event on the wire (GET /v1/audit/events). It is kept
// apart from authz.Event, the domain type (id an int64, no JSON names), and from
// chainRowAnswer (the chain's exact stored text). The client module repeats it
// as client.AuditEvent: that module cannot import internal/.
type eventAnswer struct {
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
	ZedToken     string         `json:"zed_token"`
	DecisionID   string         `json:"decision_id"`
	Client       string         `json:"client"`
	RequestID    string         `json:"request_id"`
	Details      map[string]any `json:"details,omitempty"`
}

type eventsAnswer struct {
	Events     []eventAnswer `json:"events"`
	NextCursor string        `json:"next_cursor"`
}

var auditParams = map[string]bool{"module": true, "since": true, "until": true, "tenant_id": true,
	"actor_user_id": true, "decision": true, "limit": true, "cursor": true}

// parseTime reads a date (YYYY-MM-DD, midnight UTC) or an RFC 3339 time.
func parseTime(field, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, authz.Errorf(authz.EINVALID, "%s %q is neither a date (2026-05-01) nor an RFC 3339 time (2026-05-01T12:00:00Z)", field, v)
}

func encodeCursor(c *authz.Cursor) string {
	if c == nil {
		return ""
	}
	raw := strconv.FormatInt(c.OccurredAt.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func decodeCursor(s string) (*authz.Cursor, error) {
	bad := authz.Errorf(authz.EINVALID, "cursor is not one this server issued")
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	ts, id, ok := strings.Cut(string(raw), ".")
	if !ok {
		return nil, bad
	}
	us, err1 := strconv.ParseInt(ts, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil {
		return nil, bad
	}
	c := &authz.Cursor{OccurredAt: time.UnixMicro(us).UTC(), ID: n}
	// Only the text encodeCursor gives ("+1", "01" are refused), and only times
	// Postgres can compare with: a forged cursor is the caller's mistake, not a
	// database error.
	if y := c.OccurredAt.Year(); y < minCursorYear || y > maxCursorYear || encodeCursor(c) != s {
		return nil, bad
	}
	return c, nil
}

// The years a cursor may name: every audit row is written at the current time.
const minCursorYear, maxCursorYear = 1, 9999

func (s *Server) eventFilter(r *http.Request) (authz.EventFilter, error) {
	q := r.URL.Query()
	f := authz.EventFilter{Limit: 100}
	for name, vals := range q {
		if !auditParams[name] {
			return f, authz.Errorf(authz.EINVALID, "unknown query parameter %q", name)
		}
		if len(vals) > 1 {
			return f, authz.Errorf(authz.EINVALID, "query parameter %q is given more than once", name)
		}
	}
	f.Module, f.TenantID, f.ActorUserID = q.Get("module"), q.Get("tenant_id"), q.Get("actor_user_id")
	var err error
	if v := q.Get("since"); v != "" {
		if f.Since, err = parseTime("since", v); err != nil {
			return f, err
		}
	}
	if v := q.Get("until"); v != "" {
		if f.Until, err = parseTime("until", v); err != nil {
			return f, err
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, authz.Errorf(authz.EINVALID, "until must be after since")
	}
	switch d := q.Get("decision"); d {
	case "", authz.DecisionAllowed, authz.DecisionDenied:
		f.Decision = d
	default:
		return f, authz.Errorf(authz.EINVALID, "decision must be %q or %q", authz.DecisionAllowed, authz.DecisionDenied)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return f, authz.Errorf(authz.EINVALID, "limit must be a number from 1 to 1000")
		}
		f.Limit = n
	}
	if v := q.Get("cursor"); v != "" {
		if f.After, err = decodeCursor(v); err != nil {
			return f, err
		}
	}
	return f, nil
}

func (s *Server) handleAuditEvents(w http.ResponseWriter, r *http.Request) {
	f, err := s.eventFilter(r)
	if err == nil {
		err = scopeEvents(r, &f)
	}
	if err != nil {
		s.Error(w, r, err)
		return
	}
	events, next, err := s.store.ListEvents(r.Context(), f)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := eventsAnswer{Events: make([]eventAnswer, len(events)), NextCursor: encodeCursor(next)}
	for i, e := range events {
		out.Events[i] = eventAnswer{
			ID: strconv.FormatInt(e.ID, 10), OccurredAt: e.OccurredAt.UTC(), Module: e.Module, Action: e.Action,
			ActorUserID: e.ActorUserID, TenantID: e.TenantID, ResourceType: e.ResourceType, ResourceID: e.ResourceID,
			Permission: e.Permission, Decision: e.Decision, ZedToken: e.ZedToken, DecisionID: e.DecisionID,
			Client: e.Client, RequestID: e.RequestID, Details: e.Details,
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func itoa(i int) string { return strconv.Itoa(i) }

// scopeEvents confines an audit filter to the token's tenants: a tenant_id
// it does not reach is refused; without tenant_id only its tenants' rows are
// listed.
func scopeEvents(r *http.Request, f *authz.EventFilter) error {
	t := tokenFrom(r.Context())
	if f.TenantID != "" {
		return t.Reaches(f.TenantID)
	}
	f.Tenants = t.Tenants
	return nil
}
