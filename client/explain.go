package client

import (
	"context"
	"net/http"
)

// Explanation is a decision and why: sentences a tenant admin understands and
// SpiceDB's trace of the check.
type Explanation struct {
	Allowed    bool     `json:"allowed"`
	CheckedAt  string   `json:"checked_at"`
	DecisionID string   `json:"decision_id"`
	Reasons    []string `json:"reasons"`
	Trace      *Trace   `json:"trace"`
}

// Trace is one step of SpiceDB's evaluation of a check.
type Trace struct {
	Object     string   `json:"object"`
	Permission string   `json:"permission"`
	Kind       string   `json:"kind"`
	Subject    string   `json:"subject"`
	Result     string   `json:"result"`
	Cached     bool     `json:"cached,omitempty"`
	Steps      []*Trace `json:"steps,omitempty"`
}

// Explain checks like HasModulePermission and says why the answer is what it is.
// Without WithConsistencyToken the check is fully consistent. It is audited like a
// check, with action "explain".
func (c *Client) Explain(ctx context.Context, tenantID, userID, key string, opts ...CheckOption) (Explanation, error) {
	req := CheckRequest{TenantID: tenantID, UserID: userID, Permission: key}
	for _, opt := range opts {
		opt(&req)
	}
	var x Explanation
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/permissions/explain", body: req, idempotent: true}, &x); err != nil {
		return Explanation{}, err
	}
	return x, nil
}
