package postgres_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/postgres"
)

// chained is a database holding a verified chain of n rows and a checkpoint of its head.
type chained struct {
	db     *postgres.DB
	signer *auditchain.Signer
	ids    map[int64]int64 // row id by sequence
}

// mustSignHead signs a checkpoint of db's chain head with a new key and
// returns that key. mustChain and TestRetention share it.
func mustSignHead(t *testing.T, db *postgres.DB) *auditchain.Signer {
	t.Helper()
	ctx := context.Background()
	signer, err := auditchain.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := postgres.NewCheckpointer(ctx, db, signer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, signed, err := cp.Checkpoint(ctx); err != nil || !signed {
		t.Fatalf("checkpoint: signed %v, err %v", signed, err)
	}
	return signer
}

func mustChain(t *testing.T, n int) *chained {
	t.Helper()
	ctx := context.Background()
	db := mustOpen(t)
	log := postgres.NewAuditLog(db, postgres.AuditOptions{Writers: 2, MaxBatch: 4})
	errs := make(chan error, n)
	for i := range n {
		go func() {
			e := event("scaibunker", fmt.Sprintf("u%d", i), time.Now())
			e.Details = map[string]any{"source": "spicedb", "z": i, "a": []string{"x<y", "é"}}
			errs <- log.Record(ctx, e)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	signer := mustSignHead(t, db)
	c := &chained{db: db, signer: signer, ids: map[int64]int64{}}
	rows, err := db.Pool.Query(ctx, "SELECT seq, id FROM audit_events")
	if err != nil {
		t.Fatal(err)
	}
	var seq, id int64
	if _, err := pgx.ForEachRow(rows, []any{&seq, &id}, func() error { c.ids[seq] = id; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(c.ids) != n {
		t.Fatalf("%d distinct sequence numbers for %d rows", len(c.ids), n)
	}
	return c
}

func (c *chained) verify(t *testing.T) (auditchain.Report, *auditchain.Problem) {
	t.Helper()
	r, p, err := auditchain.Walk(context.Background(), c.db, time.Time{}, map[string]ed25519.PublicKey{c.signer.KeyID(): c.signer.Public()})
	if err != nil {
		t.Fatal(err)
	}
	return r, p
}

// tamper runs SQL as the superuser with the guard triggers off, as an attacker with database access can.
func (c *chained) tamper(t *testing.T, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, c.db.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, sql, args...)
		return err
	})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestChainVerifies: rows from concurrent writers form one gap-free chain that verifies with its checkpoint.
func TestChainVerifies(t *testing.T) {
	c := mustChain(t, 40)
	r, p := c.verify(t)
	if p != nil {
		t.Fatalf("untouched chain: %v", p)
	}
	if r.Rows != 40 || r.End.Seq != 40 || r.Checkpoints != 1 {
		t.Errorf("report %+v, want 40 rows to sequence 40 and 1 checkpoint", r)
	}
	var details string
	if err := c.db.Pool.QueryRow(context.Background(), "SELECT details::text FROM audit_events WHERE seq = 1").Scan(&details); err != nil {
		t.Fatal(err)
	}
	// json keeps the writer's bytes: sorted keys, no spaces, HTML characters escaped as Go writes them.
	if want := `{"a":["x\u003cy","é"],"source":"spicedb","z":`; len(details) < len(want) || details[:len(want)] != want {
		t.Errorf("stored details %s, want the writer's exact text starting %s", details, want)
	}
}

// TestChainReplicasInterleave: two audit logs on one database (two replicas),
// two writers each, record concurrently in bursts; every batch either follows
// the head its process last left (one round trip) or takes the head's lock.
// The chain must come out gap-free and verify, whichever path each batch took,
// and both paths must have run.
func TestChainReplicasInterleave(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	t.Logf("seed %d", seed)
	logs := []*postgres.AuditLog{
		postgres.NewAuditLog(db, postgres.AuditOptions{Writers: 2, MaxBatch: 1 + rng.IntN(8)}),
		postgres.NewAuditLog(db, postgres.AuditOptions{Writers: 2, MaxBatch: 1 + rng.IntN(8)}),
	}
	n := 0
	for round := range 40 {
		// Some rounds only one replica writes (its known head stays right), some both.
		active := logs[round%2 : round%2+1]
		if rng.IntN(2) == 0 {
			active = logs
		}
		errs := make(chan error, 64)
		k := 0
		for _, l := range active {
			for range 1 + rng.IntN(16) {
				k++
				actor := fmt.Sprintf("u%d", rng.IntN(100)) // drawn here: rng is not safe for concurrent use
				go func() { errs <- l.Record(ctx, event("scaibunker", actor, time.Now())) }()
			}
		}
		for range k {
			if err := <-errs; err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		n += k
	}
	// Then one replica alone, one record at a time: after at most the
	// backoff's batches under the lock, its known head is right again.
	for range 40 {
		if err := logs[0].Record(ctx, event("scaibunker", "solo", time.Now())); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		n++
	}
	var oneTrip, locked int64
	for _, l := range logs {
		l.Close()
		o, lk := l.Batches()
		oneTrip, locked = oneTrip+o, locked+lk
	}
	t.Logf("%d rows, %d batches in one round trip, %d under the lock", n, oneTrip, locked)
	if oneTrip == 0 || locked == 0 {
		t.Errorf("seed %d: batches in one round trip %d, under the lock %d: both paths must run", seed, oneTrip, locked)
	}
	c := &chained{db: db, signer: mustSignHead(t, db)}
	r, p := c.verify(t)
	if p != nil {
		t.Fatalf("seed %d: chain of two replicas: %v", seed, p)
	}
	if r.Rows != int64(n) || r.End.Seq != int64(n) {
		t.Errorf("seed %d: report %+v, want %d rows to sequence %d", seed, r, n, n)
	}
}

// TestTamperDetected: each direct change in Postgres is caught and the row named.
func TestTamperDetected(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, c *chained) (rowID int64)
		want   auditchain.Kind
	}{
		{"Edited", func(t *testing.T, c *chained) int64 {
			c.tamper(t, "UPDATE audit_events SET decision = 'denied', actor_user_id = 'mallory' WHERE seq = 7")
			return c.ids[7]
		}, auditchain.Edited},
		{"EditedDetails", func(t *testing.T, c *chained) int64 {
			c.tamper(t, `UPDATE audit_events SET details = '{"z":1,"source":"spicedb"}' WHERE seq = 12`)
			return c.ids[12]
		}, auditchain.Edited},
		{"Deleted", func(t *testing.T, c *chained) int64 {
			c.tamper(t, "DELETE FROM audit_events WHERE seq IN (7, 8)")
			return c.ids[9]
		}, auditchain.Deleted},
		{"DeletedTail", func(t *testing.T, c *chained) int64 {
			c.tamper(t, "DELETE FROM audit_events WHERE seq >= 39")
			return 0
		}, auditchain.Deleted},
		{"InsertedCopy", func(t *testing.T, c *chained) int64 {
			c.tamper(t, `INSERT INTO audit_events (seq, hash, occurred_at, module, action, actor_user_id, decision, decision_id)
				SELECT seq, hash, occurred_at, module, action, 'mallory', 'allowed', gen_random_uuid() FROM audit_events WHERE seq = 7`)
			return maxID(t, c)
		}, auditchain.Inserted},
		{"InsertedUnchained", func(t *testing.T, c *chained) int64 {
			c.tamper(t, `INSERT INTO audit_events (occurred_at, module, action, decision, decision_id)
				VALUES (now(), 'scaibunker', 'x', 'allowed', gen_random_uuid())`)
			return maxID(t, c)
		}, auditchain.Inserted},
		{"InsertedAtEnd", func(t *testing.T, c *chained) int64 {
			c.tamper(t, `INSERT INTO audit_events (seq, hash, occurred_at, module, action, decision, decision_id)
				VALUES (41, sha256('x'), now(), 'scaibunker', 'x', 'allowed', gen_random_uuid())`)
			return maxID(t, c)
		}, auditchain.Inserted},
		{"Reordered", func(t *testing.T, c *chained) int64 {
			c.tamper(t, "UPDATE audit_events SET seq = CASE seq WHEN 7 THEN 8 ELSE 7 END WHERE seq IN (7, 8)")
			return c.ids[8] // now at sequence 7, where its hash does not belong
		}, auditchain.Reordered},
		{"Rewritten", func(t *testing.T, c *chained) int64 {
			rewrite(t, c, 5)
			return c.ids[40] // the checkpoint of the head no longer matches
		}, auditchain.Rewritten},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustChain(t, 40)
			rowID := tc.tamper(t, c)
			_, p := c.verify(t)
			if p == nil {
				t.Fatal("verify found nothing")
			}
			if p.Kind != tc.want || p.RowID != rowID {
				t.Errorf("verify: %v; want kind %s naming row id %d", p, tc.want, rowID)
			}
		})
	}
}

func maxID(t *testing.T, c *chained) int64 {
	t.Helper()
	var id int64
	if err := c.db.Pool.QueryRow(context.Background(), "SELECT max(id) FROM audit_events").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// rewrite edits the row at sequence from and recomputes every hash after it
// and the head, as a superuser without the signing key could.
func rewrite(t *testing.T, c *chained, from int64) {
	t.Helper()
	ctx := context.Background()
	c.tamper(t, "UPDATE audit_events SET actor_user_id = 'mallory' WHERE seq = $1", from)
	rows, err := c.db.Rows(ctx, from-2, 1000) // from the row before from
	if err != nil {
		t.Fatal(err)
	}
	head := auditchain.Head{Seq: rows[0].Seq, Hash: rows[0].Hash}
	rest := rows[1:]
	for i := range rest {
		rest[i].Hash = nil
	}
	head = auditchain.Extend(head, rest)
	for _, r := range rest {
		c.tamper(t, "UPDATE audit_events SET hash = $1 WHERE id = $2", r.Hash, r.ID)
	}
	c.tamper(t, "UPDATE audit_chain_head SET hash = $1", head.Hash)
}

// TestAppendOnly: without disabling triggers, rows, checkpoints and anchors cannot be changed or removed.
func TestAppendOnly(t *testing.T) {
	c := mustChain(t, 3)
	for _, sql := range []string{
		"UPDATE audit_events SET actor_user_id = 'mallory'",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
		"TRUNCATE " + currentPartition(),
		"DELETE FROM audit_checkpoints",
		"UPDATE audit_chain_anchors SET seq = 2",
		"DELETE FROM audit_signing_keys",
	} {
		_, err := c.db.Pool.Exec(context.Background(), sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Errorf("%s: err %v, want insufficient_privilege (42501)", sql, err)
		}
	}
	if _, p := c.verify(t); p != nil {
		t.Errorf("after refused changes: %v", p)
	}
}

func currentPartition() string { return "audit_events_p" + time.Now().UTC().Format("200601") }

// TestChainFailsClosed: when the chain head cannot be locked in time, the
// batch fails, Record reports unavailable, and no row is written.
func TestChainFailsClosed(t *testing.T) {
	ctx := context.Background()
	db := mustOpen(t)
	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT 1 FROM audit_chain_head FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{Timeout: 300 * time.Millisecond})
	err = log.Record(ctx, event("scaibunker", "u1", time.Now()))
	log.Close()
	if authz.ErrorCode(err) != authz.EUNAVAILABLE {
		t.Errorf("record with the head locked elsewhere: %v, want unavailable", err)
	}
	_ = tx.Rollback(ctx)
	var n int
	if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d rows (err %v) after a failed batch, want 0", n, err)
	}
}
