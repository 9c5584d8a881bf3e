package postgres

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
)

// RegisterKey records a signer's public key, so verifiers can find it.
func (db *DB) RegisterKey(ctx context.Context, pub ed25519.PublicKey) error {
	_, err := db.Pool.Exec(ctx, "INSERT INTO audit_signing_keys (key_id, public_key) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING",
		auditchain.KeyID(pub), []byte(pub))
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// SigningKeys lists every key that signed checkpoints here, oldest first.
func (db *DB) SigningKeys(ctx context.Context) ([]auditchain.PublicKey, error) {
	rows, err := db.Pool.Query(ctx, "SELECT key_id, public_key, first_seen FROM audit_signing_keys ORDER BY first_seen, key_id")
	if err != nil {
		return nil, unavailable(err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditchain.PublicKey, error) {
		var k auditchain.PublicKey
		var pub []byte
		err := row.Scan(&k.KeyID, &pub, &k.FirstSeen)
		k.Key = pub
		return k, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return keys, nil
}

// AddCheckpoint stores a signed checkpoint (once per sequence and key).
func (db *DB) AddCheckpoint(ctx context.Context, c auditchain.Checkpoint) error {
	_, err := db.Pool.Exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (seq, key_id) DO NOTHING`, c.Seq, c.Hash, c.SignedAt, c.KeyID, c.Signature)
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Checkpoints lists up to limit checkpoints with a sequence above after, in (seq, key) order.
func (db *DB) Checkpoints(ctx context.Context, after int64, limit int) ([]auditchain.Checkpoint, error) {
	rows, err := db.Pool.Query(ctx, `SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints
		WHERE seq > $1 ORDER BY seq, key_id LIMIT $2`, after, limit)
	if err != nil {
		return nil, unavailable(err)
	}
	cps, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (auditchain.Checkpoint, error) {
		var c auditchain.Checkpoint
		err := row.Scan(&c.Seq, &c.Hash, &c.SignedAt, &c.KeyID, &c.Signature)
		return c, err
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return cps, nil
}

// Checkpointer signs the chain head now and then.
type Checkpointer struct {
	db     *DB
	signer *auditchain.Signer
	logger *slog.Logger
	last   int64 // the last sequence checkpointed by this process
	// retired is set once a rotation retired the key: this process then signs nothing more.
	retired atomic.Bool
	// covered is when (Unix nanoseconds) the head was last known signed by this process.
	covered atomic.Int64
}

// NewCheckpointer registers the signer's public key and returns a checkpointer.
func NewCheckpointer(ctx context.Context, db *DB, signer *auditchain.Signer, logger *slog.Logger) (*Checkpointer, error) {
	if err := db.RegisterKey(ctx, signer.Public()); err != nil {
		return nil, err
	}
	c := &Checkpointer{db: db, signer: signer, logger: logger, last: -1}
	c.covered.Store(time.Now().UnixNano())
	return c, nil
}

// Checkpoint signs and stores the current head, unless this process already
// signed it or its key was retired by a rotation; signed says whether it did.
func (c *Checkpointer) Checkpoint(ctx context.Context) (cp auditchain.Checkpoint, signed bool, err error) {
	if c.retired.Load() {
		return cp, false, nil
	}
	cp, signed, err = c.db.checkpointUnlessRetired(ctx, c.signer, c.last)
	if errors.Is(err, ErrKeyRetired) {
		c.retired.Store(true)
		c.logger.Error("the audit signing key was retired by a key rotation: this replica signs no more checkpoints; "+
			"restart it with the new AUTHZ_AUDIT_SIGNING_KEY", "key_id", c.signer.KeyID())
		return cp, false, nil
	}
	if err != nil {
		return cp, false, err
	}
	c.covered.Store(time.Now().UnixNano())
	if !signed {
		return cp, false, nil
	}
	c.last = cp.Seq
	return cp, true, nil
}

// Age is how long ago this checkpointer last knew the head to be signed
// (since it was made, when never).
func (c *Checkpointer) Age() time.Duration { return time.Since(time.Unix(0, c.covered.Load())) }

// Retired reports whether a rotation retired this checkpointer's key.
func (c *Checkpointer) Retired() bool { return c.retired.Load() }

// Run checkpoints every interval until ctx ends.
func (c *Checkpointer) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		if _, _, err := c.Checkpoint(ctx); err != nil && ctx.Err() == nil {
			c.logger.Error("audit checkpoint failed", "err", err)
		}
	})
}

// every runs fn every interval until ctx ends; a non-positive interval never.
// internal/spicedb's watcher probe has a loop like it but stops on its own
// failure; see there why the two stay apart.
func every(ctx context.Context, interval time.Duration, fn func()) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
