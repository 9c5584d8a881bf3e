package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// AuditChainRow is one row of the audit hash chain, each field as the chain
// hashes it (see docs/audit.md): OccurredAt is "YYYY-MM-DDTHH:MM:SS.ffffffZ",
// Details the exact stored JSON text or nil.
//
// It repeats internal/http's chainRowAnswer because this module may not import
// authzd's packages; clientcontract keeps the two in step against a real
// authzd. It is kept apart from AuditEvent, whose fields look alike: that one
// is the decoded event (id a string, a time, details an object), this one the
// exact text the chain hashes.
type AuditChainRow struct {
	ID           int64   `json:"id"`
	Seq          int64   `json:"seq"`
	Hash         string  `json:"hash"` // hex
	OccurredAt   string  `json:"occurred_at"`
	Module       string  `json:"module"`
	Action       string  `json:"action"`
	ActorUserID  string  `json:"actor_user_id"`
	TenantID     string  `json:"tenant_id"`
	ResourceType string  `json:"resource_type"`
	ResourceID   string  `json:"resource_id"`
	Permission   string  `json:"permission"`
	Decision     string  `json:"decision"`
	ZedToken     string  `json:"zed_token"`
	DecisionID   string  `json:"decision_id"`
	Client       string  `json:"client"`
	RequestID    string  `json:"request_id"`
	Details      *string `json:"details"`
}

// AuditChainHead is a chain position.
type AuditChainHead struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"` // hex
}

// AuditCheckpoint is a signed chain position.
type AuditCheckpoint struct {
	Seq       int64  `json:"seq"`
	Hash      string `json:"hash"`      // hex
	SignedAt  string `json:"signed_at"` // "YYYY-MM-DDTHH:MM:SS.ffffffZ", as signed
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"` // hex
}

// AuditChainPage is one page of the chain with where it starts and ends.
type AuditChainPage struct {
	Anchor struct {
		AuditChainHead
		LegacyMaxID int64            `json:"legacy_max_id"`
		Checkpoint  *AuditCheckpoint `json:"checkpoint"`
	} `json:"anchor"`
	Head           AuditChainHead  `json:"head"`
	Start          *AuditChainHead `json:"start"`
	UnchainedRowID int64           `json:"unchained_row_id"`
	Rows           []AuditChainRow `json:"rows"`
}

// AuditSigningKey is a public key that signs checkpoints.
type AuditSigningKey struct {
	KeyID     string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	PublicKey string    `json:"public_key"` // PEM
	FirstSeen time.Time `json:"first_seen"`
	Current   bool      `json:"current"`
}

// AuditChain reads up to limit chain rows after sequence afterSeq (-1: from
// the start); a non-zero since also asks for the position before that time.
func (c *Client) AuditChain(ctx context.Context, afterSeq int64, limit int, since time.Time) (AuditChainPage, error) {
	q := url.Values{"after_seq": {strconv.FormatInt(afterSeq, 10)}, "limit": {strconv.Itoa(limit)}}
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	var p AuditChainPage
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/chain", query: q, idempotent: true}, &p)
	return p, err
}

// AuditCheckpoints reads up to limit checkpoints after sequence afterSeq.
func (c *Client) AuditCheckpoints(ctx context.Context, afterSeq int64, limit int) ([]AuditCheckpoint, error) {
	q := url.Values{"after_seq": {strconv.FormatInt(afterSeq, 10)}, "limit": {strconv.Itoa(limit)}}
	var p struct {
		Checkpoints []AuditCheckpoint `json:"checkpoints"`
	}
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/checkpoints", query: q, idempotent: true}, &p)
	return p.Checkpoints, err
}

// AuditKeys lists the public keys that signed checkpoints.
func (c *Client) AuditKeys(ctx context.Context) ([]AuditSigningKey, error) {
	var p struct {
		Keys []AuditSigningKey `json:"keys"`
	}
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/keys", idempotent: true}, &p)
	return p.Keys, err
}
