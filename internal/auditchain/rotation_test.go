package auditchain

import (
	"crypto/ed25519"
	"testing"
	"time"
)

func TestFollowRotations(t *testing.T) {
	old, next, other := mustSigner(t), mustSigner(t), mustSigner(t)
	head := Head{Seq: 7, Hash: make([]byte, 32)}
	rot := Rotate(old, next, head, time.Now())
	forged := rot
	forged.NewKeyID, forged.NewPublicKey = other.KeyID(), other.Public() // the new half swapped, the old signature kept

	for _, c := range []struct {
		name        string
		rots        []Rotation
		trusted     []*Signer
		wantLearned int
		wantRetired bool
		wantProblem bool
	}{
		{"OldKeyLearnsNew", []Rotation{rot}, []*Signer{old}, 1, true, false},
		{"NewKeyRetiresOld", []Rotation{rot}, []*Signer{next}, 0, true, false},
		{"NeitherTrusted", []Rotation{rot}, []*Signer{other}, 0, false, false},
		{"ErrForgedHandover", []Rotation{forged}, []*Signer{old}, 0, false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			trusted := map[string]ed25519.PublicKey{}
			for _, s := range c.trusted {
				trusted[s.KeyID()] = s.Public()
			}
			learned, retired, p := FollowRotations(c.rots, trusted)
			if (p != nil) != c.wantProblem || len(learned) != c.wantLearned {
				t.Fatalf("learned %v, problem %v; want %d learned, problem %v", learned, p, c.wantLearned, c.wantProblem)
			}
			if p != nil && p.Kind != Signature {
				t.Fatalf("problem kind %s; want signature", p.Kind)
			}
			if _, ok := retired[old.KeyID()]; ok != c.wantRetired {
				t.Fatalf("old key retired: %v; want %v", ok, c.wantRetired)
			}
		})
	}

	trusted := map[string]ed25519.PublicKey{old.KeyID(): old.Public()}
	_, retired, _ := FollowRotations([]Rotation{rot}, trusted)
	at := old.Sign(head, time.Now())
	after := old.Sign(Head{Seq: 8, Hash: make([]byte, 32)}, time.Now())
	if p := retiredCheckpoint([]Checkpoint{at}, retired, trusted); p != nil {
		t.Errorf("the old key's checkpoint at the rotation: %v", p)
	}
	if p := retiredCheckpoint([]Checkpoint{at, after}, retired, trusted); p == nil || p.Kind != Signature || p.Seq != 8 {
		t.Errorf("the old key's checkpoint after the rotation: %v; want a signature break at 8", p)
	}
}

func mustSigner(t *testing.T) *Signer {
	t.Helper()
	s, err := GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
