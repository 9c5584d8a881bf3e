package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// ShadowQuery selects the shadowed checks (those sent WithLegacyAllowed) a
// report covers.
type ShadowQuery struct {
	Since time.Time // required
	Until time.Time // exclusive; zero: now
	// TenantID limits the report to one tenant.
	TenantID string
	// Limit bounds the disagreement groups listed (authzd's default 100, at most 1000).
	Limit int
}

// ShadowDisagreement is every shadowed check of one tenant and key on which the legacy
// answer was LegacyAllowed and authzd's Allowed.
type ShadowDisagreement struct {
	TenantID      string    `json:"tenant_id"`
	Permission    string    `json:"permission"`
	LegacyAllowed bool      `json:"legacy_allowed"`
	Allowed       bool      `json:"allowed"`
	Count         int       `json:"count"`
	FirstAt       time.Time `json:"first_at"`
	LastAt        time.Time `json:"last_at"`
	// Examples are decision ids of the group's latest checks.
	Examples []string `json:"examples"`
}

// ShadowReport counts the shadowed checks and lists the disagreements, largest first.
type ShadowReport struct {
	Checks        int                  `json:"checks"`
	Agreed        int                  `json:"agreed"`
	Disagreements []ShadowDisagreement `json:"disagreements"`
}

// ShadowReport summarises the shadowed checks of q's window (scope audit:read).
func (c *Client) ShadowReport(ctx context.Context, q ShadowQuery) (ShadowReport, error) {
	v := url.Values{"since": {q.Since.UTC().Format(time.RFC3339)}}
	if !q.Until.IsZero() {
		v.Set("until", q.Until.UTC().Format(time.RFC3339))
	}
	if q.TenantID != "" {
		v.Set("tenant_id", q.TenantID)
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var r ShadowReport
	if err := c.do(ctx, call{method: http.MethodGet, path: "/v1/shadow/report", query: v, idempotent: true}, &r); err != nil {
		return ShadowReport{}, err
	}
	return r, nil
}
