package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/scailabs/authzd/client"
	"github.com/scailabs/authzd/internal/auditchain"
)

var _ auditchain.RotationSource = httpChain{}

// Rotations reads the key rotation records (GET /v1/audit/rotations).
func (h httpChain) Rotations(ctx context.Context, after int64, limit int) ([]auditchain.Rotation, error) {
	rots, err := h.c.AuditKeyRotations(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]auditchain.Rotation, len(rots))
	for i, r := range rots {
		if out[i], err = rotationIn(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func rotationIn(r client.AuditKeyRotation) (auditchain.Rotation, error) {
	hash, err1 := hex.DecodeString(r.Hash)
	oldSig, err2 := hex.DecodeString(r.OldSignature)
	newSig, err3 := hex.DecodeString(r.NewSignature)
	at, err4 := time.Parse(auditchain.TimeLayout, r.RotatedAt)
	pub, err5 := auditchain.ParsePublicKey([]byte(r.NewPublicKey))
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || err5 != nil {
		return auditchain.Rotation{}, fmt.Errorf("key rotation at sequence %d is malformed", r.Seq)
	}
	return auditchain.Rotation{Seq: r.Seq, Hash: hash, RotatedAt: at, OldKeyID: r.OldKeyID, NewKeyID: r.NewKeyID,
		NewPublicKey: pub, OldSignature: oldSig, NewSignature: newSig}, nil
}
