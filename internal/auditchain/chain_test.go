package auditchain

import (
	"encoding/hex"
	"testing"
	"time"
)

// TestLinkVector: the canonical form and link hash of docs/audit.md, with
// hashes computed independently (Python hashlib) from the specification.
func TestLinkVector(t *testing.T) {
	r := Row{Seq: 7, OccurredAt: time.Date(2026, 5, 1, 14, 0, 0, 123456000, time.FixedZone("CEST", 2*3600)),
		Module: "scaibunker", Action: "bunker.exec", ActorUserID: "alice", TenantID: "t1", ResourceType: "bunker",
		ResourceID: "b-1", Permission: "scaibunker:execute", Decision: "allowed", ZedToken: "GhUK",
		DecisionID: "01a2b3c4-0000-7000-8000-000000000001", Client: "token:x:ci", RequestID: "req-1",
		Details: []byte(`{"source":"cache"}`)}
	for _, tc := range []struct {
		name    string
		details []byte
		want    string
	}{
		{"Details", r.Details, "2d64713e00c5d61433ac47c72df3dd22cbba465dd18e040ddb10a848bb65db66"},
		{"NullDetails", nil, "beb20eaf840fa1f06d51af44e9e123c562338feae0335b1834f04a07abb6b3f7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := r
			row.Details = tc.details
			if got := hex.EncodeToString(Link(Genesis, row)); got != tc.want {
				t.Errorf("Link = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestCheckpointSignature: a checkpoint verifies with its key only, and not once any field changes.
func TestCheckpointSignature(t *testing.T) {
	s, err := GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateSigner()
	cp := s.Sign(Head{Seq: 9, Hash: Genesis}, time.Now())
	if !cp.Verify(s.Public()) || cp.Verify(other.Public()) {
		t.Fatal("a checkpoint must verify with its own key and no other")
	}
	moved := cp
	moved.Seq = 10
	later := cp
	later.SignedAt = cp.SignedAt.Add(time.Microsecond)
	for name, c := range map[string]Checkpoint{"Seq": moved, "SignedAt": later} {
		if c.Verify(s.Public()) {
			t.Errorf("a checkpoint with another %s still verifies", name)
		}
	}
	pub, err := ParsePublicKey(MarshalPublicKey(s.Public()))
	if err != nil || KeyID(pub) != s.KeyID() {
		t.Errorf("public key PEM round trip: %v, key id %s want %s", err, KeyID(pub), s.KeyID())
	}
}

// TestWholeGroups: a full page gives back the items of its last sequence
// number, unless that is all it holds.
func TestWholeGroups(t *testing.T) {
	seq := func(n int64) int64 { return n }
	for _, tc := range []struct {
		page []int64
		want int
	}{
		{[]int64{1, 2, 3}, 2},
		{[]int64{1, 2, 2}, 1},
		{[]int64{2, 2, 2}, 3},
		{nil, 0},
	} {
		if got := wholeGroups(tc.page, seq); got != tc.want {
			t.Errorf("wholeGroups(%v) = %d, want %d", tc.page, got, tc.want)
		}
	}
}
