package auditchain

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// Rotation is the handover of checkpoint signing from one key to the next,
// at a chain position both keys signed. The old key's signature lets a
// verifier who trusts only the old key learn the new one; from Seq on, a
// checkpoint of the old key is a break.
type Rotation struct {
	Seq          int64
	Hash         []byte
	RotatedAt    time.Time
	OldKeyID     string
	NewKeyID     string
	NewPublicKey ed25519.PublicKey
	OldSignature []byte
	NewSignature []byte
}

// Message is the byte string both keys sign:
// "authzd-audit-key-rotation-v1\n<seq>\n<hex hash>\n<rotated_at in TimeLayout>\n<old key id>\n<hex new public key>".
func (r Rotation) Message() []byte {
	return []byte("authzd-audit-key-rotation-v1\n" + strconv.FormatInt(r.Seq, 10) + "\n" + hex.EncodeToString(r.Hash) + "\n" +
		r.RotatedAt.UTC().Format(TimeLayout) + "\n" + r.OldKeyID + "\n" + hex.EncodeToString(r.NewPublicKey))
}

// Rotate makes the rotation record of head from old to next, signed by both.
func Rotate(old, next *Signer, head Head, at time.Time) Rotation {
	r := Rotation{Seq: head.Seq, Hash: head.Hash, RotatedAt: at.UTC().Truncate(time.Microsecond),
		OldKeyID: old.KeyID(), NewKeyID: next.KeyID(), NewPublicKey: next.Public()}
	r.OldSignature = ed25519.Sign(old.key, r.Message())
	r.NewSignature = ed25519.Sign(next.key, r.Message())
	return r
}

// verifyNew checks the new key's half: its id names its public key and its signature holds.
func (r Rotation) verifyNew() bool {
	return len(r.NewPublicKey) == ed25519.PublicKeySize && KeyID(r.NewPublicKey) == r.NewKeyID &&
		ed25519.Verify(r.NewPublicKey, r.Message(), r.NewSignature)
}

// FollowRotations applies the rotation records to the trusted keys, in
// sequence order. A rotation from a trusted key must verify with it and
// with the new key, which then becomes trusted too (learned lists the ids
// learned so). A rotation only the new key is trusted for retires the old
// key without trusting it. retired maps each retired key to its rotation's
// sequence. trusted is extended in place.
func FollowRotations(rots []Rotation, trusted map[string]ed25519.PublicKey) (learned []string, retired map[string]int64, p *Problem) {
	rots = append([]Rotation(nil), rots...)
	sort.SliceStable(rots, func(i, j int) bool { return rots[i].Seq < rots[j].Seq })
	retired = map[string]int64{}
	for _, r := range rots {
		oldPub, oldTrusted := trusted[r.OldKeyID]
		newPub, newTrusted := trusted[r.NewKeyID]
		switch {
		case oldTrusted:
			if !ed25519.Verify(oldPub, r.Message(), r.OldSignature) || !r.verifyNew() {
				return learned, retired, &Problem{Kind: Signature, Seq: r.Seq,
					Reason: fmt.Sprintf("the rotation from key %s to %s does not verify", r.OldKeyID, r.NewKeyID)}
			}
			if !newTrusted {
				trusted[r.NewKeyID] = r.NewPublicKey
				learned = append(learned, r.NewKeyID)
			}
		case newTrusted:
			if !bytes.Equal(newPub, r.NewPublicKey) || !r.verifyNew() {
				return learned, retired, &Problem{Kind: Signature, Seq: r.Seq,
					Reason: fmt.Sprintf("the rotation to key %s does not verify with it", r.NewKeyID)}
			}
		default:
			continue // neither key is trusted: the record proves nothing here
		}
		retired[r.OldKeyID] = r.Seq
	}
	return learned, retired, nil
}

// retiredCheckpoint finds a checkpoint signed by a trusted key after that
// key was retired: a leaked old key still signing.
func retiredCheckpoint(cps []Checkpoint, retired map[string]int64, trusted map[string]ed25519.PublicKey) *Problem {
	for _, c := range cps {
		at, ok := retired[c.KeyID]
		if _, t := trusted[c.KeyID]; ok && t && c.Seq > at {
			return &Problem{Kind: Signature, Seq: c.Seq, Reason: fmt.Sprintf("a checkpoint signed at %s by key %s, which was retired at sequence %d",
				c.SignedAt.UTC().Format(time.RFC3339), c.KeyID, at)}
		}
	}
	return nil
}
