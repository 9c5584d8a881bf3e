package client

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Decisions recorded in the audit trail.
const (
	DecisionAllowed = "allowed"
	DecisionDenied  = "denied"
)

// AuditEvent is one row of the audit trail: a decision or a provisioning write. It repeats the server's
// answer type (internal/http) because this module may not import authzd's packages; clientcontract tests
// every route against api/openapi.yaml and a real authzd.
type AuditEvent struct {
	ID           string    `json:"id"` // a decimal number, increasing with insertion order
	OccurredAt   time.Time `json:"occurred_at"`
	Module       string    `json:"module"`
	Action       string    `json:"action"`
	ActorUserID  string    `json:"actor_user_id"`
	TenantID     string    `json:"tenant_id"`
	ResourceType string    `json:"resource_type"`
	ResourceID   string    `json:"resource_id"`
	Permission   string    `json:"permission"`
	Decision     string    `json:"decision"` // DecisionAllowed or DecisionDenied
	ZedToken     string    `json:"zed_token"`
	DecisionID   string    `json:"decision_id"`
	Client       string    `json:"client"` // the name of the API token that made the request
	RequestID    string    `json:"request_id"`
	// Details holds what else the operation recorded, such as a role's keys.
	Details map[string]any `json:"details,omitempty"`
}

// AuditQuery filters the audit trail. Zero fields do not filter.
type AuditQuery struct {
	Module      string // e.g. "scaibunker"
	TenantID    string
	ActorUserID string
	Decision    string    // DecisionAllowed or DecisionDenied
	Since       time.Time // events at or after
	Until       time.Time // events before
	// Limit is the page size: at most 1000; zero asks for authzd's default (100).
	Limit int
	// Cursor is the NextCursor of the previous page; empty for the first.
	Cursor string
}

// AuditPage is one page of the audit trail.
type AuditPage struct {
	Events []AuditEvent `json:"events"`
	// NextCursor is the Cursor of the next page; empty at the end.
	NextCursor string `json:"next_cursor"`
}

func (q AuditQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("module", q.Module)
	set("tenant_id", q.TenantID)
	set("actor_user_id", q.ActorUserID)
	set("decision", q.Decision)
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339Nano))
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	set("cursor", q.Cursor)
	return v
}

// ListAuditEvents reads one page of the audit trail, oldest first.
func (c *Client) ListAuditEvents(ctx context.Context, q AuditQuery) (AuditPage, error) {
	var p AuditPage
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/events", query: q.values(), idempotent: true}, &p); err != nil {
		return AuditPage{}, err
	}
	return p, nil
}

// AuditEvents iterates over the audit trail, oldest first, following cursors from
// q.Cursor until the last page. An error is yielded once and ends the iteration.
//
//	for ev, err := range c.AuditEvents(ctx, client.AuditQuery{Module: "scaibunker"}) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(ev.OccurredAt, ev.ActorUserID, ev.Permission, ev.Decision)
//	}
func (c *Client) AuditEvents(ctx context.Context, q AuditQuery) iter.Seq2[AuditEvent, error] {
	return func(yield func(AuditEvent, error) bool) {
		for {
			p, err := c.ListAuditEvents(ctx, q)
			if err != nil {
				yield(AuditEvent{}, err)
				return
			}
			for _, ev := range p.Events {
				if !yield(ev, nil) {
					return
				}
			}
			if p.NextCursor == "" {
				return
			}
			if p.NextCursor == q.Cursor {
				yield(AuditEvent{}, errors.New("authzd client: audit cursor did not advance"))
				return
			}
			q.Cursor = p.NextCursor
		}
	}
}
