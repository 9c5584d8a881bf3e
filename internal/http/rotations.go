package http

import (
	"encoding/hex"
	"net/http"

	"github.com/scailabs/authzd/internal/auditchain"
)

// rotationAnswer is a key rotation record in the form both keys signed it.
type rotationAnswer struct {
	Seq          int64  `json:"seq"`
	Hash         string `json:"hash"`
	RotatedAt    string `json:"rotated_at"`
	OldKeyID     string `json:"old_key_id"`
	NewKeyID     string `json:"new_key_id"`
	NewPublicKey string `json:"new_public_key"` // PEM, PKIX
	OldSignature string `json:"old_signature"`
	NewSignature string `json:"new_signature"`
}

func (s *Server) handleAuditRotations(w http.ResponseWriter, r *http.Request) {
	after, limit, err := pageParams(r, map[string]bool{"after_seq": true, "limit": true})
	if err != nil {
		s.Error(w, r, err)
		return
	}
	rots, err := s.chain.Rotations(r.Context(), after, limit)
	if err != nil {
		s.Error(w, r, err)
		return
	}
	out := struct {
		Rotations []rotationAnswer `json:"rotations"`
	}{Rotations: make([]rotationAnswer, len(rots))}
	for i, rot := range rots {
		out.Rotations[i] = rotationAnswer{
			Seq: rot.Seq, Hash: hex.EncodeToString(rot.Hash), RotatedAt: rot.RotatedAt.UTC().Format(auditchain.TimeLayout),
			OldKeyID: rot.OldKeyID, NewKeyID: rot.NewKeyID, NewPublicKey: string(auditchain.MarshalPublicKey(rot.NewPublicKey)),
			OldSignature: hex.EncodeToString(rot.OldSignature), NewSignature: hex.EncodeToString(rot.NewSignature),
		}
	}
	writeJSON(w, http.StatusOK, out)
}
