package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// AuditKeyRotation is the handover of checkpoint signing from one key to the
// next (authzd audit rotate-key), signed by both (docs/audit.md).
type AuditKeyRotation struct {
	Seq          int64  `json:"seq"`
	Hash         string `json:"hash"`       // hex
	RotatedAt    string `json:"rotated_at"` // as signed
	OldKeyID     string `json:"old_key_id"`
	NewKeyID     string `json:"new_key_id"`
	NewPublicKey string `json:"new_public_key"` // PEM
	OldSignature string `json:"old_signature"`  // hex
	NewSignature string `json:"new_signature"`  // hex
}

// AuditKeyRotations reads up to limit key rotations after sequence afterSeq.
func (c *Client) AuditKeyRotations(ctx context.Context, afterSeq int64, limit int) ([]AuditKeyRotation, error) {
	q := url.Values{"after_seq": {strconv.FormatInt(afterSeq, 10)}, "limit": {strconv.Itoa(limit)}}
	var p struct {
		Rotations []AuditKeyRotation `json:"rotations"`
	}
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit/rotations", query: q, idempotent: true}, &p)
	return p.Rotations, err
}
