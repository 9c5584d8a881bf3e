package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
)

// signingLockKey serializes checkpoint signing with key rotation, so that a
// checkpoint is either committed before a rotation of its key or refused
// after it: a retired key never signs past its rotation.
const signingLockKey int64 = 0x61757468_7a640002 // "authzd" + 2

// ErrKeyRetired is a signing key a rotation retired.
var ErrKeyRetired = errors.New("the audit signing key was retired by a key rotation")

// Retirement says when a key was rotated out.
type Retirement struct {
	Seq       int64
	RotatedAt time.Time
	NewKeyID  string
}

// Retired reports whether keyID was rotated out, and when.
func (db *DB) Retired(ctx context.Context, keyID string) (Retirement, bool, error) {
	return retired(ctx, db.Pool, keyID)
}

type queryRower interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func retired(ctx context.Context, q queryRower, keyID string) (Retirement, bool, error) {
	var r Retirement
	err := q.QueryRow(ctx, "SELECT seq, rotated_at, new_key_id FROM audit_key_rotations WHERE old_key_id = $1", keyID).
		Scan(&r.Seq, &r.RotatedAt, &r.NewKeyID)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, unavailable(err)
	}
	return r, true, nil
}

// Rotations lists up to limit rotations with a sequence above after, in sequence order.
func (db *DB) Rotations(ctx context.Context, after int64, limit int) ([]auditchain.Rotation, error) {
	rows, err := db.Pool.Query(ctx, `SELECT seq, hash, rotated_at, old_key_id, new_key_id, new_public_key, old_signature, new_signature
		FROM audit_key_rotations WHERE seq > $1 ORDER BY seq, old_key_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	rots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditchain.Rotation, error) {
		var r auditchain.Rotation
		var pub []byte
		err := row.Scan(&r.Seq, &r.Hash, &r.RotatedAt, &r.OldKeyID, &r.NewKeyID, &pub, &r.OldSignature, &r.NewSignature)
		r.NewPublicKey = pub
		return r, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return rots, nil
}

// RotateKey hands checkpoint signing over from old to next at the current
// chain head: both keys sign the head (as checkpoints) and the rotation
// record, in one transaction. Rotating a retired key, or to a retired key,
// is refused.
func (db *DB) RotateKey(ctx context.Context, old, next *auditchain.Signer) (auditchain.Rotation, error) {
	var rot auditchain.Rotation
	if old.KeyID() == next.KeyID() {
		return rot, fmt.Errorf("the new key is the key in use (%s)", old.KeyID())
	}
	err := pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", signingLockKey); err != nil {
			return err
		}
		for _, id := range []string{old.KeyID(), next.KeyID()} {
			if r, ok, err := retired(ctx, tx, id); err != nil {
				return err
			} else if ok {
				return fmt.Errorf("key %s: %w at sequence %d (%s)", id, ErrKeyRetired, r.Seq, r.RotatedAt.UTC().Format(time.RFC3339))
			}
		}
		var head auditchain.Head
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head").Scan(&head.Seq, &head.Hash); err != nil {
			return err
		}
		now := time.Now()
		rot = auditchain.Rotate(old, next, head, now)
		for _, s := range []*auditchain.Signer{old, next} {
			if _, err := tx.Exec(ctx, "INSERT INTO audit_signing_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
				s.KeyID(), []byte(s.Public())); err != nil {
				return err
			}
			c := s.Sign(head, now)
			if _, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)
				ON CONFLICT (seq, key_id) DO NOTHING`, c.Seq, c.Hash, c.SignedAt, c.KeyID, c.Signature); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO audit_key_rotations (seq, hash, rotated_at, old_key_id, new_key_id, new_public_key, old_signature, new_signature)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, rot.Seq, rot.Hash, rot.RotatedAt, rot.OldKeyID, rot.NewKeyID, []byte(rot.NewPublicKey),
			rot.OldSignature, rot.NewSignature)
		return err
	})
	if err != nil && !errors.Is(err, ErrKeyRetired) {
		return rot, fmt.Errorf("rotate the audit signing key: %w", err)
	}
	return rot, err
}

// checkpointUnlessRetired signs and stores the head with signer unless it
// is the sequence last (already signed) or the key is retired
// (ErrKeyRetired), under the lock RotateKey takes.
func (db *DB) checkpointUnlessRetired(ctx context.Context, signer *auditchain.Signer, last int64) (cp auditchain.Checkpoint, signed bool, err error) {
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", signingLockKey); err != nil {
			return err
		}
		if _, ok, err := retired(ctx, tx, signer.KeyID()); err != nil {
			return err
		} else if ok {
			return ErrKeyRetired
		}
		var head auditchain.Head
		if err := tx.QueryRow(ctx, "SELECT seq, hash FROM audit_chain_head").Scan(&head.Seq, &head.Hash); err != nil {
			return err
		}
		if head.Seq == last {
			return nil
		}
		cp = signer.Sign(head, time.Now())
		_, err := tx.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (seq, key_id) DO NOTHING`, cp.Seq, cp.Hash, cp.SignedAt, cp.KeyID, cp.Signature)
		signed = err == nil
		return err
	})
	if err != nil && !errors.Is(err, ErrKeyRetired) {
		err = unavailable(err)
	}
	return cp, signed, err
}
