package app

import (
	"context"
	"fmt"
	"time"

	"github.com/scailabs/authzd/internal/auditchain"
)

// refuseRetiredKey refuses to start with a signing key a rotation retired.
func (m *Main) refuseRetiredKey(ctx context.Context) error {
	r, retired, err := m.db.Retired(ctx, m.signer.KeyID())
	if err != nil || !retired {
		return err
	}
	return fmt.Errorf("AUTHZ_AUDIT_SIGNING_KEY: key %s was retired by a key rotation at sequence %d (%s); start with the new key %s",
		m.signer.KeyID(), r.Seq, r.RotatedAt.UTC().Format(time.RFC3339), r.NewKeyID)
}

// RotateAuditKey hands checkpoint signing over from AUTHZ_AUDIT_SIGNING_KEY
// to the key in newKeyFile (authzd audit rotate-key).
func RotateAuditKey(ctx context.Context, cfg Config, newKeyFile string) (auditchain.Rotation, error) {
	if cfg.AuditSigningKey == "" {
		return auditchain.Rotation{}, fmt.Errorf("AUTHZ_AUDIT_SIGNING_KEY is empty: rotate-key hands over from the key in use, which it must read")
	}
	old, err := auditchain.LoadSigner(cfg.AuditSigningKey)
	if err != nil {
		return auditchain.Rotation{}, fmt.Errorf("AUTHZ_AUDIT_SIGNING_KEY: %w", err)
	}
	next, err := auditchain.LoadSigner(newKeyFile)
	if err != nil {
		return auditchain.Rotation{}, fmt.Errorf("--new-key: %w", err)
	}
	db, err := OpenStore(ctx, cfg)
	if err != nil {
		return auditchain.Rotation{}, err
	}
	defer db.Close()
	return db.RotateKey(ctx, old, next)
}
