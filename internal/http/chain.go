package http

import (
	"context"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
)

// Chain is what the server needs to serve the audit hash chain.
type Chain interface {
	auditchain.Source
	auditchain.RotationSource
	SigningKeys(ctx context.Context) ([]auditchain.PublicKey, error)
}

// chainRowAnswer is a row in the form its canonical encoding reads it:
// occurred_at already in auditchain.TimeLayout, details the exact stored JSON text.
// Kept apart from eventAnswer (GET /v1/audit/events), whose fields look alike:
// that one answers the decoded event, this one the text the chain hashes, so a
// change to either answer cannot change the other. The client module repeats it
// as client.AuditChainRow: that module cannot import internal/.
type chainRowAnswer struct {
	ID           int64   `json:"id"`
	Seq          int64   `json:"seq"`
	Hash         string  `json:"hash"`
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

type headAnswer struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

type checkpointAnswer struct {
	Seq       int64  `json:"seq"`
	Hash      string `json:"hash"`
	SignedAt  string `json:"signed_at"`
	KeyID     string `json:"key_id"`
	Signature string `json:"signature"`
}

type anchorAnswer struct {
	headAnswer
	LegacyMaxID int64             `json:"legacy_max_id"`
	Checkpoint  *checkpointAnswer `json:"checkpoint"`
}

type chainAnswer struct {
	Anchor anchorAnswer `json:"anchor"`
	Head   headAnswer   `json:"head"`
	// Start is the position before the first row at or after since (only with since).
	Start *headAnswer `json:"start,omitempty"`
	// UnchainedRowID is a row without a sequence newer than the chain's start: 0 when there is none.
	UnchainedRowID int64            `json:"unchained_row_id"`
	Rows           []chainRowAnswer `json:"rows"`
}

func headOut(h auditchain.Head) headAnswer {
	return headAnswer{Seq: h.Seq, Hash: hex.EncodeToString(h.Hash)}
}

func checkpointOut(c auditchain.Checkpoint) checkpointAnswer {
	return checkpointAnswer{Seq: c.Seq, Hash: hex.EncodeToString(c.Hash), SignedAt: c.SignedAt.UTC().Format(auditchain.TimeLayout),
		KeyID: c.KeyID, Signature: hex.EncodeToString(c.Signature)}
}

// pageParams reads after_seq (default -1: from the start) and limit (0 to 1000).
func pageParams(r *http.Request, allowed map[string]bool) (after int64, limit int, err error) {
	q := r.URL.Query()
	for name, vals := range q {
		if !allowed[name] {
			return 0, 0, authz.Errorf(authz.EINVALID, "unknown query parameter %q", name)
		}
		if len(vals) > 1 {
			return 0, 0, authz.Errorf(authz.EINVALID, "query parameter %q is given more than once", name)
		}
	}
	after, limit = -1, 100
	if v := q.Get("after_seq"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < -1 {
			return 0, 0, authz.Errorf(authz.EINVALID, "after_seq must be a sequence number")
		}
	}
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 0 || limit > 1000 {
			return 0, 0, authz.Errorf(authz.EINVALID, "limit must be a number from 0 to 1000")
		}
	}
	return after, limit, nil
}

func (s *Server) handleAuditChain(w http.ResponseWriter, r *http.Request) {
	after, limit, err := pageParams(r, map[string]bool{"after_seq": true, "limit": true, "since": true})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	ctx := r.Context()
	var out chainAnswer
	anchor, err := s.chain.Anchor(ctx)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out.Anchor = anchorAnswer{headAnswer: headOut(anchor.Head), LegacyMaxID: anchor.LegacyMaxID}
	if anchor.Checkpoint != nil {
		cp := checkpointOut(*anchor.Checkpoint)
		out.Anchor.Checkpoint = &cp
	}
	head, err := s.chain.Head(ctx)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out.Head = headOut(head)
	if v := r.URL.Query().Get("since"); v != "" {
		since, err := parseTime("since", v)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		start, err := s.chain.Before(ctx, since)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		sa := headOut(start)
		out.Start = &sa
	}
	if out.UnchainedRowID, err = s.chain.Unchained(ctx, anchor.LegacyMaxID); err != nil {
		s.Error(w, r, err)
		return
	}
	out.Rows = []chainRowAnswer{}
	if limit > 0 {
		rows, err := s.chain.Rows(ctx, after, limit)
		if err != nil {
			s.Error(w, r, err)
			return
		}
		for _, row := range rows {
			a := chainRowAnswer{ID: row.ID, Seq: row.Seq, Hash: hex.EncodeToString(row.Hash),
				OccurredAt: row.OccurredAt.UTC().Format(auditchain.TimeLayout), Module: row.Module, Action: row.Action,
				ActorUserID: row.ActorUserID, TenantID: row.TenantID, ResourceType: row.ResourceType, ResourceID: row.ResourceID,
				Permission: row.Permission, Decision: row.Decision, ZedToken: row.ZedToken, DecisionID: row.DecisionID,
				Client: row.Client, RequestID: row.RequestID}
			if row.Details != nil {
				d := string(row.Details)
				a.Details = &d
			}
			out.Rows = append(out.Rows, a)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// handleAuditCheckpoints and handleAuditKeys share their shape with each other
// and with the provisioning reads (read, fail, map to the answer, write) but
// not their source, paging or answer type; a shared body would take a reader
// and a mapping for a few lines each, so they stay written out.
func (s *Server) handleAuditCheckpoints(w http.ResponseWriter, r *http.Request) {
	after, limit, err := pageParams(r, map[string]bool{"after_seq": true, "limit": true})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	cps, err := s.chain.Checkpoints(r.Context(), after, limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := struct {
		Checkpoints []checkpointAnswer `json:"checkpoints"`
	}{Checkpoints: make([]checkpointAnswer, len(cps))}
	for i, c := range cps {
		out.Checkpoints[i] = checkpointOut(c)
	}
	writeJSON(w, http.StatusOK, out)
}

type signingKeyAnswer struct {
	KeyID     string    `json:"key_id"`
	Algorithm string    `json:"algorithm"`
	PublicKey string    `json:"public_key"` // PEM, PKIX
	FirstSeen time.Time `json:"first_seen"`
	// Current marks the key this instance signs with.
	Current bool `json:"current"`
}

func (s *Server) handleAuditKeys(w http.ResponseWriter, r *http.Request) {
	keys, err := s.chain.SigningKeys(r.Context())
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := struct {
		Keys []signingKeyAnswer `json:"keys"`
	}{Keys: make([]signingKeyAnswer, len(keys))}
	for i, k := range keys {
		out.Keys[i] = signingKeyAnswer{KeyID: k.KeyID, Algorithm: "Ed25519", PublicKey: string(auditchain.MarshalPublicKey(k.Key)),
			FirstSeen: k.FirstSeen.UTC(), Current: k.KeyID == s.signingKeyID}
	}
	writeJSON(w, http.StatusOK, out)
}
