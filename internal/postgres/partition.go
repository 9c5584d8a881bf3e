package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
)

// maintenanceLock is the advisory lock key that lets one replica at a time
// create and drop audit partitions.
const maintenanceLock int64 = 0x617564_6974_7032 // "audit p2"

// PartitionsAhead is how many months after the current one always have a partition.
const PartitionsAhead = 2

// EnsurePartitions creates the monthly partitions of audit_events from the
// month holding from to the month holding to, where missing.
func (db *DB) EnsurePartitions(ctx context.Context, from, to time.Time) error {
	for m := monthOf(from); !m.After(to); m = m.AddDate(0, 1, 0) {
		if _, err := db.Pool.Exec(ctx, "SELECT audit_events_ensure_partition($1::date)", m.Format(time.DateOnly)); err != nil {
			return fmt.Errorf("create the audit partition of %s: %w", m.Format("2006-01"), err)
		}
	}
	return nil
}

func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// Maintainer keeps audit_events partitioned: partitions created ahead, and
// with a retention, whole partitions older than it detached and dropped
// (never DELETE), the chain anchor moved past them and signed.
type Maintainer struct {
	db        *DB
	signer    *auditchain.Signer
	retention time.Duration
	logger    *slog.Logger
}

// NewMaintainer returns a maintainer; a retention of 0 keeps every row.
func NewMaintainer(db *DB, signer *auditchain.Signer, retention time.Duration, logger *slog.Logger) *Maintainer {
	return &Maintainer{db: db, signer: signer, retention: retention, logger: logger}
}

// Maintenance says what one run did.
type Maintenance struct {
	Skipped bool     // another replica held the maintenance lock
	Dropped []string // partitions dropped by retention
	Failed  []string // months whose partition could not be created
	Anchor  auditchain.Head
}

// Maintain runs once as of now, in one transaction under the maintenance
// advisory lock; when another replica holds it, it does nothing.
func (m *Maintainer) Maintain(ctx context.Context, now time.Time) (Maintenance, error) {
	var out Maintenance
	err := pgx.BeginFunc(ctx, m.db.Pool, func(tx pgx.Tx) error {
		// Creating or dropping a partition locks audit_events briefly; never queue writers behind a long wait.
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = '5s'"); err != nil {
			return err
		}
		var locked bool
		if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", maintenanceLock).Scan(&locked); err != nil {
			return err
		}
		if !locked {
			out.Skipped = true
			return nil
		}
		for i := range PartitionsAhead + 1 {
			month := monthOf(now).AddDate(0, i, 0)
			// In a savepoint: a month that cannot get its partition now (e.g. the
			// lock timed out) must not stop retention; the next run, or the writer
			// on demand, creates it.
			err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
				_, err := sp.Exec(ctx, "SELECT audit_events_ensure_partition($1::date)", month.Format(time.DateOnly))
				return err
			})
			if err != nil {
				out.Failed = append(out.Failed, month.Format("2006-01"))
				m.logger.Error("cannot create an audit partition ahead", "month", month.Format("2006-01"), "err", err)
			}
		}
		if m.retention <= 0 {
			return nil
		}
		return m.dropOld(ctx, tx, now.Add(-m.retention), &out)
	})
	if err != nil {
		return out, unavailable(err)
	}
	return out, nil
}

// dropOld drops, oldest first, the monthly partitions that end before cutoff.
func (m *Maintainer) dropOld(ctx context.Context, tx pgx.Tx, cutoff time.Time, out *Maintenance) error {
	// Dropping signs an anchor: a key a rotation retired signs nothing more,
	// so retention waits for a replica with the new key.
	if _, ok, err := retired(ctx, tx, m.signer.KeyID()); err != nil || ok {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_p[0-9]{6}$' ORDER BY c.relname`)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	var anchor auditchain.Head
	var legacy int64
	if err := tx.QueryRow(ctx, "SELECT seq, hash, (SELECT max(legacy_max_id) FROM audit_chain_anchors) FROM audit_chain_anchors ORDER BY seq DESC LIMIT 1").
		Scan(&anchor.Seq, &anchor.Hash, &legacy); err != nil {
		return err
	}
	for _, name := range names {
		start, err := time.Parse("200601", name[len("audit_events_p"):])
		if err != nil || start.AddDate(0, 1, 0).After(cutoff) {
			continue
		}
		ident := pgx.Identifier{name}.Sanitize()
		// The partition's last chained row becomes the anchor. Rows with a lower
		// sequence left in later partitions (a batch that crossed the month
		// boundary) then lie before the anchor and are no longer verified.
		var last auditchain.Head
		err = tx.QueryRow(ctx, "SELECT seq, hash FROM "+ident+" WHERE seq IS NOT NULL ORDER BY seq DESC, id LIMIT 1").Scan(&last.Seq, &last.Hash)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return err
		case last.Seq > anchor.Seq:
			anchor = last
			cp := m.signer.Sign(anchor, time.Now())
			if _, err := tx.Exec(ctx, `INSERT INTO audit_chain_anchors (seq, hash, legacy_max_id, dropped, signed_at, key_id, signature)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, anchor.Seq, anchor.Hash, legacy, name, cp.SignedAt, cp.KeyID, cp.Signature); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "ALTER TABLE audit_events DETACH PARTITION "+ident); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
			return err
		}
		out.Dropped = append(out.Dropped, name)
		m.logger.Info("audit retention dropped a partition", "partition", name, "anchor_seq", anchor.Seq)
	}
	out.Anchor = anchor
	return nil
}

// Run maintains every interval until ctx ends.
func (m *Maintainer) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		if _, err := m.Maintain(ctx, time.Now()); err != nil && ctx.Err() == nil {
			m.logger.Error("audit partition maintenance failed", "err", err)
		}
	})
}
