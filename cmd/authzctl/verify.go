package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"fmt"
	"time"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/internal/auditchain"
)

func auditVerifyCmd() *command {
	var since string
	var keys stringList
	return &command{
		name: "verify", summary: "Verify the audit hash chain and its signed checkpoints over HTTP.",
		help: `Reads GET /v1/audit/chain page by page, recomputes every link, checks every checkpoint
signature and compares it with its row, and names the first broken row: edited, deleted,
inserted, reordered or rewritten (docs/audit.md). Exit status 1 when the chain is broken.
Pass the public key you hold with --public-key; without it the keys authzd serves are used,
with a warning (they live in the same database as the chain).`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&since, "since", "", "verify from the first row at or after this time (date, RFC 3339 or duration), trusting the row before it")
			fs.Var(&keys, "public-key", "PEM public key file trusted for checkpoints (repeatable)")
		},
		run: func(ctx context.Context, e *env, c *client.Client, _ []string) error {
			from, err := parseWhen("since", since, time.Now())
			if err != nil {
				return err
			}
			trusted, err := auditchain.ReadTrusted(keys)
			if err != nil {
				return usagef("--public-key: %v", err)
			}
			if len(keys) == 0 {
				served, err := c.AuditKeys(ctx)
				if err != nil {
					return err
				}
				for _, k := range served {
					pub, err := auditchain.ParsePublicKey([]byte(k.PublicKey))
					if err != nil {
						return fmt.Errorf("served key %s: %w", k.KeyID, err)
					}
					trusted[auditchain.KeyID(pub)] = pub
				}
				fmt.Fprintln(e.stderr, "warning: no --public-key given: checkpoints are checked against the keys authzd serves, which catches edits but not a rewrite by someone who can also add a key")
			}
			report, problem, err := auditchain.Walk(ctx, httpChain{c}, from, trusted)
			if err != nil {
				return err
			}
			if problem != nil {
				fmt.Fprintln(e.stdout, "BROKEN:", problem.Error())
				fmt.Fprintln(e.stdout, "verified before the break:", report)
				return errDenied
			}
			fmt.Fprintln(e.stdout, "OK:", report)
			return nil
		},
	}
}

// httpChain reads the chain from authzd.
type httpChain struct{ c *client.Client }

var _ auditchain.Source = httpChain{}

func (h httpChain) Anchor(ctx context.Context) (auditchain.Anchor, error) {
	p, err := h.c.AuditChain(ctx, -1, 0, time.Time{})
	if err != nil {
		return auditchain.Anchor{}, err
	}
	head, err := headIn(p.Anchor.AuditChainHead)
	a := auditchain.Anchor{Head: head, LegacyMaxID: p.Anchor.LegacyMaxID}
	if err == nil && p.Anchor.Checkpoint != nil {
		var cp auditchain.Checkpoint
		cp, err = checkpointIn(*p.Anchor.Checkpoint)
		a.Checkpoint = &cp
	}
	return a, err
}

func (h httpChain) Head(ctx context.Context) (auditchain.Head, error) {
	p, err := h.c.AuditChain(ctx, -1, 0, time.Time{})
	if err != nil {
		return auditchain.Head{}, err
	}
	return headIn(p.Head)
}

func (h httpChain) Before(ctx context.Context, t time.Time) (auditchain.Head, error) {
	p, err := h.c.AuditChain(ctx, -1, 0, t)
	if err != nil {
		return auditchain.Head{}, err
	}
	if p.Start == nil {
		return auditchain.Head{}, fmt.Errorf("authzd answered no start position for --since")
	}
	return headIn(*p.Start)
}

func (h httpChain) Unchained(ctx context.Context, _ int64) (int64, error) {
	p, err := h.c.AuditChain(ctx, -1, 0, time.Time{})
	return p.UnchainedRowID, err
}

func (h httpChain) Rows(ctx context.Context, after int64, limit int) ([]auditchain.Row, error) {
	p, err := h.c.AuditChain(ctx, after, limit, time.Time{})
	if err != nil {
		return nil, err
	}
	rows := make([]auditchain.Row, len(p.Rows))
	for i, r := range p.Rows {
		at, err := time.Parse(auditchain.TimeLayout, r.OccurredAt)
		if err != nil {
			return nil, fmt.Errorf("row %d: occurred_at %q: %w", r.ID, r.OccurredAt, err)
		}
		hash, err := hex.DecodeString(r.Hash)
		if err != nil {
			return nil, fmt.Errorf("row %d: hash: %w", r.ID, err)
		}
		rows[i] = auditchain.Row{ID: r.ID, Seq: r.Seq, Hash: hash, OccurredAt: at, Module: r.Module, Action: r.Action,
			ActorUserID: r.ActorUserID, TenantID: r.TenantID, ResourceType: r.ResourceType, ResourceID: r.ResourceID,
			Permission: r.Permission, Decision: r.Decision, ZedToken: r.ZedToken, DecisionID: r.DecisionID,
			Client: r.Client, RequestID: r.RequestID}
		if r.Details != nil {
			rows[i].Details = []byte(*r.Details)
		}
	}
	return rows, nil
}

func (h httpChain) Checkpoints(ctx context.Context, after int64, limit int) ([]auditchain.Checkpoint, error) {
	cps, err := h.c.AuditCheckpoints(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]auditchain.Checkpoint, len(cps))
	for i, c := range cps {
		if out[i], err = checkpointIn(c); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func headIn(h client.AuditChainHead) (auditchain.Head, error) {
	hash, err := hex.DecodeString(h.Hash)
	return auditchain.Head{Seq: h.Seq, Hash: hash}, err
}

func checkpointIn(c client.AuditCheckpoint) (auditchain.Checkpoint, error) {
	hash, err1 := hex.DecodeString(c.Hash)
	sig, err2 := hex.DecodeString(c.Signature)
	at, err3 := time.Parse(auditchain.TimeLayout, c.SignedAt)
	if err1 != nil || err2 != nil || err3 != nil || len(sig) != ed25519.SignatureSize {
		return auditchain.Checkpoint{}, fmt.Errorf("checkpoint at sequence %d is malformed", c.Seq)
	}
	return auditchain.Checkpoint{Seq: c.Seq, Hash: hash, SignedAt: at, KeyID: c.KeyID, Signature: sig}, nil
}
