package auditchain

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"time"
)

// Kind says how the chain was broken.
type Kind string

// The ways a chain breaks.
const (
	Edited    Kind = "edited"    // a row's content no longer matches its hash
	Deleted   Kind = "deleted"   // sequence numbers are missing
	Inserted  Kind = "inserted"  // a row that the writer did not chain
	Reordered Kind = "reordered" // a row's hash is right for another position
	Rewritten Kind = "rewritten" // the links hold but a signed checkpoint disagrees
	Signature Kind = "signature" // a checkpoint or anchor signature does not verify
)

// Problem is the first break a verifier found.
type Problem struct {
	Kind   Kind
	RowID  int64 // the row to look at; 0 when none is left to blame
	Seq    int64
	Reason string
}

func (p *Problem) Error() string {
	if p.RowID == 0 {
		return fmt.Sprintf("%s at sequence %d: %s", p.Kind, p.Seq, p.Reason)
	}
	return fmt.Sprintf("%s: row id %d (sequence %d): %s", p.Kind, p.RowID, p.Seq, p.Reason)
}

// Report sums up a verification.
type Report struct {
	Start       Head  // where verification started (an anchor or genesis)
	End         Head  // the last verified row
	Rows        int64 // rows verified
	Checkpoints int   // checkpoints whose signature verified with a trusted key and whose row matched
	Untrusted   int   // checkpoints signed by a key not trusted (not checked against rows)
	// Learned are the keys trusted because a rotation from a trusted key handed over to them.
	Learned []string
}

// Verifier walks a chain in sequence order. Feed it pages of rows, then
// call Finish with the chain head the database reports.
type Verifier struct {
	prev   Head
	report Report
	cps    map[int64][]Checkpoint
	buf    []Row
	window []Row // the last rows verified, to find where a moved row belongs
}

// lookback bounds the rows searched for the true position of a moved row.
const lookback = 32

// NewVerifier starts at start (genesis: seq 0 and Genesis; after retention,
// the anchor). Checkpoints signed by a key in trusted must verify; they are
// then compared with the rows on the way. A non-nil anchor is the signed
// checkpoint of start and must verify too.
func NewVerifier(start Head, anchor *Checkpoint, checkpoints []Checkpoint, trusted map[string]ed25519.PublicKey) (*Verifier, *Problem) {
	v := &Verifier{prev: start, cps: map[int64][]Checkpoint{}}
	v.report.Start, v.report.End = start, start
	if anchor != nil {
		pub, ok := trusted[anchor.KeyID]
		switch {
		case !ok:
			v.report.Untrusted++
		case !anchor.Verify(pub) || anchor.Seq != start.Seq || !bytes.Equal(anchor.Hash, start.Hash):
			return nil, &Problem{Kind: Signature, Seq: start.Seq, Reason: "the retention anchor's signature does not verify"}
		}
	}
	for _, c := range checkpoints {
		pub, ok := trusted[c.KeyID]
		if !ok {
			v.report.Untrusted++
			continue
		}
		if !c.Verify(pub) {
			return nil, &Problem{Kind: Signature, Seq: c.Seq, Reason: fmt.Sprintf("the checkpoint signed at %s by key %s does not verify", c.SignedAt.UTC().Format(time.RFC3339), c.KeyID)}
		}
		switch {
		case c.Seq < start.Seq:
			v.report.Checkpoints++ // before the anchor: its rows were dropped by retention
		case c.Seq == start.Seq:
			if !bytes.Equal(c.Hash, start.Hash) {
				return nil, &Problem{Kind: Rewritten, Seq: c.Seq, Reason: "the starting anchor differs from a signed checkpoint"}
			}
			v.report.Checkpoints++
		default:
			v.cps[c.Seq] = append(v.cps[c.Seq], c)
		}
	}
	return v, nil
}

// Feed verifies a page of rows, which must follow the previous page in
// (seq, id) order. The last row is held back until the next page or Finish,
// since telling an edit from an insertion needs the row after it.
func (v *Verifier) Feed(rows []Row) *Problem {
	v.buf = append(v.buf, rows...)
	for len(v.buf) > 1 {
		if p := v.step(v.buf[0], &v.buf[1]); p != nil {
			return p
		}
		v.buf = v.buf[1:]
	}
	return nil
}

// Finish verifies the held-back row and compares the chain's end with head.
func (v *Verifier) Finish(head Head) (Report, *Problem) {
	for _, r := range v.buf {
		if r.Seq > head.Seq {
			return v.report, &Problem{Kind: Inserted, RowID: r.ID, Seq: r.Seq, Reason: fmt.Sprintf("the row lies beyond the chain head (sequence %d)", head.Seq)}
		}
		if p := v.step(r, nil); p != nil {
			return v.report, p
		}
	}
	v.buf = nil
	if v.prev.Seq < head.Seq {
		return v.report, &Problem{Kind: Deleted, Seq: v.prev.Seq + 1, Reason: fmt.Sprintf("rows %d to %d are missing at the end (the chain head is %d)", v.prev.Seq+1, head.Seq, head.Seq)}
	}
	if v.prev.Seq == head.Seq && !bytes.Equal(v.prev.Hash, head.Hash) {
		return v.report, &Problem{Kind: Rewritten, Seq: head.Seq, Reason: "the last row's hash differs from the recorded chain head"}
	}
	for seq, cs := range v.cps {
		if seq > v.prev.Seq {
			return v.report, &Problem{Kind: Deleted, Seq: seq, Reason: fmt.Sprintf("a checkpoint signed at %s covers sequence %d but the chain ends at %d", cs[0].SignedAt.UTC().Format(time.RFC3339), seq, v.prev.Seq)}
		}
	}
	return v.report, nil
}

func (v *Verifier) step(r Row, next *Row) *Problem {
	want := v.prev.Seq + 1
	switch {
	case r.Seq < want:
		return &Problem{Kind: Inserted, RowID: r.ID, Seq: r.Seq, Reason: fmt.Sprintf("sequence %d appears twice; this row is the one that does not link", r.Seq)}
	case r.Seq > want:
		return &Problem{Kind: Deleted, RowID: r.ID, Seq: r.Seq, Reason: fmt.Sprintf("rows %d to %d are missing before this row", want, r.Seq-1)}
	}
	if !bytes.Equal(Link(v.prev.Hash, r), r.Hash) {
		return v.classify(r, next)
	}
	for _, c := range v.cps[r.Seq] {
		if !bytes.Equal(c.Hash, r.Hash) {
			return &Problem{Kind: Rewritten, RowID: r.ID, Seq: r.Seq, Reason: fmt.Sprintf("the row's hash differs from the checkpoint signed at %s: the chain was rewritten from here or earlier", c.SignedAt.UTC().Format(time.RFC3339))}
		}
		v.report.Checkpoints++
	}
	delete(v.cps, r.Seq)
	v.prev = Head{Seq: r.Seq, Hash: r.Hash}
	v.report.End = v.prev
	v.report.Rows++
	v.window = append(v.window, r)
	if len(v.window) > 2*lookback {
		v.window = append(v.window[:0], v.window[len(v.window)-lookback:]...)
	}
	return nil
}

// classify names a row whose link fails.
func (v *Verifier) classify(r Row, next *Row) *Problem {
	p := &Problem{RowID: r.ID, Seq: r.Seq}
	if next != nil && next.Seq == r.Seq && bytes.Equal(Link(v.prev.Hash, *next), next.Hash) {
		p.Kind, p.Reason = Inserted, fmt.Sprintf("sequence %d appears twice; row id %d links and this one does not", r.Seq, next.ID)
		return p
	}
	if s, ok := v.belongsAt(r, next); ok {
		p.Kind, p.Reason = Reordered, fmt.Sprintf("the row's hash is right for sequence %d, not %d: it was moved", s, r.Seq)
		return p
	}
	if next != nil && bytes.Equal(Link(r.Hash, *next), next.Hash) {
		p.Kind, p.Reason = Edited, "the row's content does not match its hash, and the next row links to that hash"
		return p
	}
	p.Kind, p.Reason = Edited, "the row does not match its hash: it was edited, or inserted or rewritten with a made-up hash"
	return p
}

// belongsAt looks for the position whose predecessor hash and sequence
// number would make r's stored hash right.
func (v *Verifier) belongsAt(r Row, next *Row) (int64, bool) {
	cands := append([]Row{}, v.window...)
	if next != nil {
		cands = append(cands, *next)
	}
	prevs := [][]byte{v.prev.Hash}
	seqs := []int64{r.Seq + 1}
	for _, c := range cands {
		prevs = append(prevs, c.Hash)
		seqs = append(seqs, c.Seq, c.Seq+1)
	}
	for _, s := range seqs {
		if s == r.Seq {
			continue
		}
		moved := r
		moved.Seq = s
		c := moved.Canonical()
		for _, h := range prevs {
			if bytes.Equal(linkCanonical(h, c), r.Hash) {
				return s, true
			}
		}
	}
	return 0, false
}
