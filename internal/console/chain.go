package console

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"time"

	"github.com/scailabs/authzd/internal/auditchain"
)

// ChainStatus is what the audit page says of the hash chain: its head, its
// last checkpoint, and the outcome of the last in-process verification.
type ChainStatus struct {
	Checked    time.Time
	HeadSeq    int64
	HeadHash   string
	Checkpoint *auditchain.Checkpoint
	// VerifiedTo is the last sequence number verified.
	VerifiedTo int64
	// Broken is the first break found: it stays until authzd restarts.
	Broken *auditchain.Problem
	// Error is a verification that could not read the chain.
	Error string
}

// Status is the last verification's outcome.
func (c *Console) Status() ChainStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status
}

// resume is a chain source whose rows before from are taken as verified:
// Walk with a since time starts at Before, which here is where the last
// verification ended.
type resume struct {
	auditchain.Source
	from auditchain.Head
}

func (r resume) Before(context.Context, time.Time) (auditchain.Head, error) { return r.from, nil }

// Verify verifies the rows added since the last verification (all of them
// the first time), trusting the signing keys the database lists.
func (c *Console) Verify(ctx context.Context) {
	c.mu.Lock()
	from, broken := c.from, c.status.Broken
	c.mu.Unlock()
	st := ChainStatus{Checked: time.Now(), Broken: broken, VerifiedTo: from.Seq}
	err := func() error {
		head, err := c.o.Chain.Head(ctx)
		if err != nil {
			return err
		}
		st.HeadSeq, st.HeadHash = head.Seq, hex.EncodeToString(head.Hash)
		for after := int64(-1); ; {
			cps, err := c.o.Chain.Checkpoints(ctx, after, auditchain.PageSize)
			if err != nil {
				return err
			}
			if len(cps) > 0 {
				last := cps[len(cps)-1]
				st.Checkpoint, after = &last, last.Seq
			}
			if len(cps) < auditchain.PageSize {
				break
			}
		}
		if broken != nil {
			return nil
		}
		keys, err := c.o.Chain.SigningKeys(ctx)
		if err != nil {
			return err
		}
		trusted := map[string]ed25519.PublicKey{}
		for _, k := range keys {
			trusted[k.KeyID] = k.Key
		}
		var src auditchain.Source = c.o.Chain
		var since time.Time
		if from.Seq > 0 {
			src, since = resume{Source: c.o.Chain, from: from}, time.Unix(1, 0)
		}
		report, problem, err := auditchain.Walk(ctx, src, since, trusted)
		if err != nil {
			return err
		}
		if problem != nil {
			st.Broken = problem
			return nil
		}
		if report.End.Seq > from.Seq {
			from = report.End
		}
		st.VerifiedTo = from.Seq
		return nil
	}()
	if err != nil {
		st.Error = "the chain could not be read; see the log"
		c.o.Logger.WarnContext(ctx, "console: audit chain verification failed", "err", err)
	}
	c.mu.Lock()
	c.status, c.from = st, from
	c.mu.Unlock()
}

// Run verifies the chain now and every VerifyInterval until ctx ends.
func (c *Console) Run(ctx context.Context) {
	c.Verify(ctx)
	t := time.NewTicker(c.o.VerifyInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			c.Verify(ctx)
		}
	}
}
