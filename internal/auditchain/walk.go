package auditchain

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"strings"
	"time"
)

// Anchor is where the chain starts now: genesis, or after a retention drop
// the last sequence and hash of the dropped rows, with its signature.
type Anchor struct {
	Head
	// LegacyMaxID: rows with ids up to it predate the chain and carry no sequence.
	LegacyMaxID int64
	Checkpoint  *Checkpoint // nil for genesis
}

// Source is a chain to verify: the database itself, or authzd over HTTP.
type Source interface {
	Anchor(ctx context.Context) (Anchor, error)
	Head(ctx context.Context) (Head, error)
	// Rows lists up to limit chained rows with a sequence above after, in (seq, id) order.
	Rows(ctx context.Context, after int64, limit int) ([]Row, error)
	// Before is the position just before the first row at or after t.
	Before(ctx context.Context, t time.Time) (Head, error)
	// Checkpoints lists up to limit checkpoints with a sequence above after, in sequence order.
	Checkpoints(ctx context.Context, after int64, limit int) ([]Checkpoint, error)
	// Unchained finds a row without a sequence whose id is above legacyMaxID (0 when none).
	Unchained(ctx context.Context, legacyMaxID int64) (int64, error)
}

// RotationSource is a Source that also serves the key rotation records.
type RotationSource interface {
	// Rotations lists up to limit rotations with a sequence above after, in sequence order.
	Rotations(ctx context.Context, after int64, limit int) ([]Rotation, error)
}

// PageSize is how many rows a walk reads at a time.
const PageSize = 1000

// Walk verifies src from its anchor (or from the first row at or after
// since, trusting the row before it) to its head. The error is for a source
// that cannot be read; a *Problem is a broken chain.
func Walk(ctx context.Context, src Source, since time.Time, trusted map[string]ed25519.PublicKey) (Report, *Problem, error) {
	anchor, err := src.Anchor(ctx)
	if err != nil {
		return Report{}, nil, err
	}
	if id, err := src.Unchained(ctx, anchor.LegacyMaxID); err != nil {
		return Report{}, nil, err
	} else if id != 0 {
		return Report{}, &Problem{Kind: Inserted, RowID: id, Reason: "the row has no sequence number but is newer than the chain's start: it was not written by authzd's writer"}, nil
	}
	start, cp := anchor.Head, anchor.Checkpoint
	if !since.IsZero() {
		if start, err = src.Before(ctx, since); err != nil {
			return Report{}, nil, err
		}
		if start.Seq < anchor.Seq {
			start = anchor.Head
		} else {
			cp = nil
		}
	}
	var cps []Checkpoint
	for after := int64(-1); ; {
		page, err := src.Checkpoints(ctx, after, PageSize)
		if err != nil {
			return Report{}, nil, err
		}
		if len(page) < PageSize {
			cps = append(cps, page...)
			break
		}
		n := wholeGroups(page, func(c Checkpoint) int64 { return c.Seq })
		cps = append(cps, page[:n]...)
		after = page[n-1].Seq
	}
	// The head after the checkpoints (none can be beyond it) and before the rows:
	// rows committed while walking lie beyond it and are left for the next run.
	head, err := src.Head(ctx)
	if err != nil {
		return Report{}, nil, err
	}
	signed := cps
	if cp != nil {
		signed = append([]Checkpoint{*cp}, cps...) // the anchor's signature is held to the same rule
	}
	learned, p, err := followSource(ctx, src, signed, trusted)
	if err != nil {
		return Report{}, nil, err
	}
	if p != nil {
		return Report{Start: start, Learned: learned}, p, nil
	}
	v, p := NewVerifier(start, cp, cps, trusted)
	if p != nil {
		return Report{Start: start, Learned: learned}, p, nil
	}
	v.report.Learned = learned
	for after := start.Seq; after < head.Seq; {
		rows, err := src.Rows(ctx, after, PageSize)
		if err != nil {
			return Report{}, nil, err
		}
		// Rows beyond the head read at the start are checked below, not linked.
		n := len(rows)
		if n == PageSize {
			n = wholeGroups(rows, func(r Row) int64 { return r.Seq })
		}
		for n > 0 && rows[n-1].Seq > head.Seq {
			n--
		}
		if n == 0 {
			break
		}
		if p := v.Feed(rows[:n]); p != nil {
			return v.report, p, nil
		}
		after = rows[n-1].Seq
		if n < len(rows) && rows[n].Seq > head.Seq {
			break
		}
	}
	r, p := v.Finish(head)
	if p != nil {
		return r, p, nil
	}
	// A row beyond the head is fine if a writer committed it meanwhile (the head moved past it).
	beyond, err := src.Rows(ctx, head.Seq, 1)
	if err != nil || len(beyond) == 0 {
		return r, nil, err
	}
	now, err := src.Head(ctx)
	if err != nil {
		return r, nil, err
	}
	if beyond[0].Seq > now.Seq {
		return r, &Problem{Kind: Inserted, RowID: beyond[0].ID, Seq: beyond[0].Seq, Reason: fmt.Sprintf("the row lies beyond the chain head (sequence %d)", now.Seq)}, nil
	}
	return r, nil, nil
}

// followSource reads src's key rotations, when it serves them, learns the
// keys they hand over from trusted ones (trusted is extended) and finds
// checkpoints of retired keys.
func followSource(ctx context.Context, src Source, cps []Checkpoint, trusted map[string]ed25519.PublicKey) ([]string, *Problem, error) {
	rs, ok := src.(RotationSource)
	if !ok {
		return nil, nil, nil
	}
	var rots []Rotation
	for after := int64(-1); ; {
		page, err := rs.Rotations(ctx, after, PageSize)
		if err != nil {
			return nil, nil, err
		}
		rots = append(rots, page...)
		if len(page) < PageSize {
			break
		}
		after = page[len(page)-1].Seq
	}
	learned, retired, p := FollowRotations(rots, trusted)
	if p == nil {
		p = retiredCheckpoint(cps, retired, trusted)
	}
	return learned, p, nil
}

// wholeGroups is how many items of a full page to keep so that the items
// sharing the last sequence number are read again with the next page (which
// starts after a sequence number), never skipped; all of them when the page
// holds a single sequence number.
func wholeGroups[T any](page []T, seq func(T) int64) int {
	n := len(page)
	for n > 0 && seq(page[n-1]) == seq(page[len(page)-1]) {
		n--
	}
	if n == 0 {
		return len(page)
	}
	return n
}

// String sums the report up in one line.
func (r Report) String() string {
	s := fmt.Sprintf("%d rows verified from sequence %d to %d; %d checkpoints verified, %d signed by keys not trusted",
		r.Rows, r.Start.Seq+1, r.End.Seq, r.Checkpoints, r.Untrusted)
	if len(r.Learned) > 0 {
		s += fmt.Sprintf("; keys learned from rotation records: %s", strings.Join(r.Learned, ", "))
	}
	return s
}
