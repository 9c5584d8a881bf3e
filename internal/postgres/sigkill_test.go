package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/pgtest"
	"github.com/scailabs/authzd/internal/postgres"
)

// childEnv makes the test binary the audit writer that the test kills.
const childEnv = "AUTHZ_TEST_AUDIT_WRITER_CHILD"

// TestAnsweredWhileNextBatchFlushesSurvivesSIGKILL: a record acknowledged
// while a later batch was still in flight (sent behind it on the writer's
// connection, committing or about to) has its row committed, even when the
// process is killed with SIGKILL the moment it has the answer. The child
// writes under load and prints the decision id of such an answer, having
// read the row back on another connection (so an answer given before the
// commit, say at the statement's result, fails here); the test kills it as
// soon as it reads the line, then finds the row. After the
// kills, a new writer carries on and the chain verifies.
func TestAnsweredWhileNextBatchFlushesSurvivesSIGKILL(t *testing.T) {
	if url := os.Getenv(childEnv); url != "" {
		writeUntilKilled(url)
		return
	}
	ctx := context.Background()
	url := pgtest.MustCreate(t)
	db, err := postgres.Open(ctx, url, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := postgres.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAnsweredWhileNextBatchFlushesSurvivesSIGKILL$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+url)
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		id := ""
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "answered "); ok {
				if err := cmd.Process.Kill(); err != nil {
					t.Fatal(err)
				}
				var visible int
				if _, err := fmt.Sscanf(v, "%s visible %d", &id, &visible); err != nil {
					t.Fatalf("child said %q: %v", v, err)
				}
				if visible != 1 {
					t.Errorf("round %d: decision %s was answered while its row was not yet visible to another connection (%d rows): answered before its commit", round, id, visible)
				}
				break
			}
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if id == "" {
			t.Fatalf("round %d: the child gave no answer while a later batch was in flight", round)
		}
		var n int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE decision_id = $1", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Fatalf("round %d: decision %s was answered, then the writer was killed: %d rows, want 1", round, id, n)
		}
		var total int
		if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&total); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: the answered decision's row is committed (%d rows after the kill)", round, total)
	}
	// A new writer finds the head where the killed ones left it, and the chain holds.
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	for i := range 20 {
		if err := log.Record(ctx, event("scaibunker", fmt.Sprintf("after-%d", i), time.Now())); err != nil {
			t.Fatal(err)
		}
	}
	log.Close()
	c := &chained{db: db, signer: mustSignHead(t, db)}
	if r, p := c.verify(t); p != nil {
		t.Fatalf("chain after the kills: %v", p)
	} else {
		t.Logf("chain verifies: %d rows to sequence %d", r.Rows, r.End.Seq)
	}
}

// writeUntilKilled records from 16 callers and prints the decision id of
// each record acknowledged while a later batch is still in flight, and
// whether its row was then visible (committed) to another connection.
func writeUntilKilled(url string) {
	ctx := context.Background()
	db, err := postgres.Open(ctx, url, 8)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log := postgres.NewAuditLog(db, postgres.AuditOptions{})
	var mu sync.Mutex
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				e := event("scaibunker", fmt.Sprintf("child-%d-%d", w, i), time.Now())
				if err := log.Record(ctx, e); err != nil {
					fmt.Fprintln(os.Stderr, "record:", err)
					continue
				}
				if postgres.InFlight(log) > 0 {
					// Committed means visible to another connection at once.
					var n int
					if err := db.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE decision_id = $1", e.DecisionID).Scan(&n); err != nil {
						fmt.Fprintln(os.Stderr, "read back:", err)
						continue
					}
					mu.Lock()
					fmt.Printf("answered %s visible %d\n", e.DecisionID, n)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
}
