package client

import (
	"context"
	"encoding/json"
	"net/http"
	"time"
)

// WhatIfRequest asks which of a tenant's decisions in [Since, Until) the
// changes would turn around. Each change is one record of the bulk import's
// format with "op" ("put" or "delete"), e.g.
// {"op":"delete","kind":"member","tenant_id":"t","role_id":"ops","user_id":"u"}.
type WhatIfRequest struct {
	TenantID string    `json:"tenant_id"`
	Since    time.Time `json:"since"`
	// Until is the end of the window (exclusive); zero means now.
	Until time.Time `json:"until,omitzero"`
	// ConsistencyToken makes the prediction at least as fresh as that write.
	ConsistencyToken string            `json:"consistency_token,omitempty"`
	Changes          []json.RawMessage `json:"changes"`
}

// WhatIfResult is the prediction: the questions answered, those skipped
// (their key or resource type is gone), the flips, and the revision the
// prediction was made at.
type WhatIfResult struct {
	Questions int          `json:"questions"`
	Skipped   int          `json:"skipped"`
	Flips     []WhatIfFlip `json:"flips"`
	ZedToken  string       `json:"zed_token"`
}

// WhatIfFlip is one question whose answer the changes turn around: From and
// To are "allowed" or "denied"; Decisions counts its decisions in the window.
type WhatIfFlip struct {
	UserID        string    `json:"user_id"`
	Permission    string    `json:"permission"`
	Resource      *Resource `json:"resource,omitempty"`
	From          string    `json:"from"`
	To            string    `json:"to"`
	Decisions     int64     `json:"decisions"`
	LastDecidedAt time.Time `json:"last_decided_at"`
}

// WhatIf predicts the flips of req's changes without making them (POST
// /v1/whatif, scopes check and audit:read). It writes nothing but its audit
// row, so it is retried like a read.
func (c *Client) WhatIf(ctx context.Context, req WhatIfRequest) (WhatIfResult, error) {
	if req.Changes == nil {
		req.Changes = []json.RawMessage{}
	}
	var res WhatIfResult
	if err := c.do(ctx, call{method: http.MethodPost, path: "/v1/whatif", body: req, idempotent: true}, &res); err != nil {
		return WhatIfResult{}, err
	}
	return res, nil
}
