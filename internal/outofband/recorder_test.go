package outofband

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// fakeSource replays its revisions ("1", "2", ...) after the start cursor,
// then waits for the end of ctx, like a quiet Watch stream.
type fakeSource struct {
	mu        sync.Mutex
	revisions []authz.ChangeBatch
	refuse    bool // refuse any start cursor, like a revision past SpiceDB's GC window
}

var errRefused = errors.New("refused cursor")

func (s *fakeSource) add(b authz.ChangeBatch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b.Revision = strconv.Itoa(len(s.revisions) + 1)
	b.RevisionKey = "k" + b.Revision
	s.revisions = append(s.revisions, b)
}

func (s *fakeSource) HeadRevision(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strconv.Itoa(len(s.revisions)), nil
}

func (s *fakeSource) FollowChanges(ctx context.Context, from string, fn func(authz.ChangeBatch) error) error {
	s.mu.Lock()
	refuse, revs := s.refuse, append([]authz.ChangeBatch(nil), s.revisions...)
	s.mu.Unlock()
	if refuse {
		return errRefused
	}
	start, _ := strconv.Atoi(from)
	for _, b := range revs[start:] {
		if err := fn(b); err != nil {
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}

type fakeLease struct{}

func (fakeLease) Held(context.Context) error { return nil }
func (fakeLease) Release(context.Context)    {}

// fakeStore keeps the cursor and the audit rows in memory.
type fakeStore struct {
	mu      sync.Mutex
	cursor  string
	rows    []authz.Event
	authzd  map[string]bool // decision ids of authzd's own provisioning rows
	cursors []string        // every cursor stored, in order
}

func (s *fakeStore) WatchCursor(context.Context, string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, nil
}

func (s *fakeStore) SaveWatchCursor(_ context.Context, _ string, rev string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cursor = rev
	s.cursors = append(s.cursors, rev)
	return nil
}

func (s *fakeStore) AuthzdDecisions(_ context.Context, ids []string) (map[string]bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	found := map[string]bool{}
	for _, id := range ids {
		if s.authzd[id] {
			found[id] = true
		}
		for _, r := range s.rows {
			if r.DecisionID == id {
				found[id] = true
			}
		}
	}
	return found, nil
}

func (s *fakeStore) TryLease(context.Context, int64) (Lease, error) { return fakeLease{}, nil }

func (s *fakeStore) Record(_ context.Context, events ...authz.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, events...)
	return nil
}

func (s *fakeStore) snapshot() (string, []authz.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursor, append([]authz.Event(nil), s.rows...)
}

func change(rel string) []authz.RelationshipChange {
	return []authz.RelationshipChange{{Operation: "touch", Relationship: rel, Tuple: authz.Tuple{ResourceType: "tenant", ResourceID: "acme"}, TenantID: "acme"}}
}

// run starts a recorder over src and store and returns its stop function.
func run(src Source, store *fakeStore, grace time.Duration) func() {
	r := New(src, store, store, slog.New(slog.NewTextHandler(io.Discard, nil)), Options{
		Grace: grace, Retry: 10 * time.Millisecond, SaveEvery: time.Millisecond,
		CursorUnusable: func(err error) bool { return errors.Is(err, errRefused) },
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	return func() { cancel(); <-done }
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRecorderHoldsCursorBehindTaggedRevision(t *testing.T) {
	src := &fakeSource{}
	store := &fakeStore{cursor: "0", authzd: map[string]bool{"own": true}}
	src.add(authz.ChangeBatch{WriteIDs: []string{"own/1"}, Changes: change("tenant:acme#member@user:a")})    // 1: authzd's own
	src.add(authz.ChangeBatch{WriteIDs: []string{"forged/1"}, Changes: change("tenant:acme#member@user:b")}) // 2: a forged tag
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:c")})                 // 3: made with zed
	src.add(authz.ChangeBatch{})                                                                             // 4: a checkpoint
	stop := run(src, store, 300*time.Millisecond)
	defer stop()

	// The untagged change is recorded at once, but the cursor may not pass the tagged revisions
	// before their grace is over: a restart must look them up again.
	waitFor(t, "the untagged row", func() bool { _, rows := store.snapshot(); return len(rows) == 1 })
	if cursor, rows := store.snapshot(); cursor != "0" || rows[0].Details["relationship"] != "tenant:acme#member@user:c" {
		t.Fatalf("before the grace: cursor %s, rows %+v", cursor, rows)
	}
	waitFor(t, "the cursor at the checkpoint", func() bool { c, _ := store.snapshot(); return c == "4" })
	_, rows := store.snapshot()
	if len(rows) != 2 {
		t.Fatalf("rows %+v, want the zed change and the forged one", rows)
	}
	forged := rows[1]
	if forged.Details["relationship"] != "tenant:acme#member@user:b" || forged.Action != ActionExternal {
		t.Fatalf("second row %+v, want the forged change", forged)
	}
	if ids, _ := forged.Details["claimed_write_ids"].([]string); len(ids) != 1 || ids[0] != "forged/1" {
		t.Fatalf("claimed ids %v", forged.Details["claimed_write_ids"])
	}
}

func TestRecorderReplayWritesNoDuplicates(t *testing.T) {
	src := &fakeSource{}
	store := &fakeStore{cursor: "0"}
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:c")})
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:d")})
	stop := run(src, store, time.Second)
	waitFor(t, "two rows", func() bool { _, rows := store.snapshot(); return len(rows) == 2 })
	stop()

	// A crash between the rows' commit and the cursor's store replays the revisions.
	store.mu.Lock()
	store.cursor = "0"
	store.mu.Unlock()
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:e")})
	stop = run(src, store, time.Second)
	defer stop()
	waitFor(t, "the cursor at 3", func() bool { c, _ := store.snapshot(); return c == "3" })
	if _, rows := store.snapshot(); len(rows) != 3 {
		t.Fatalf("%d rows after the replay, want 3: %+v", len(rows), rows)
	}
}

func TestRecorderRecordsGapWhenCursorIsRefused(t *testing.T) {
	src := &fakeSource{refuse: true}
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:c")})
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:d")})
	store := &fakeStore{cursor: "old"}
	stop := run(src, store, time.Second)
	defer stop()
	waitFor(t, "the gap row", func() bool { _, rows := store.snapshot(); return len(rows) > 0 })
	stop()
	cursor, rows := store.snapshot()
	if rows[0].Action != ActionGap || rows[0].Details["from_revision"] != "old" || rows[0].Details["to_revision"] != "2" {
		t.Fatalf("gap row %+v", rows[0])
	}
	if cursor != "2" {
		t.Fatalf("cursor %s after the gap, want the head 2", cursor)
	}
}

func TestRecorderStartsAtHeadWithoutCursor(t *testing.T) {
	src := &fakeSource{}
	src.add(authz.ChangeBatch{Untagged: true, Changes: change("tenant:acme#member@user:before")})
	store := &fakeStore{}
	stop := run(src, store, time.Second)
	defer stop()
	waitFor(t, "a cursor", func() bool { c, _ := store.snapshot(); return c != "" })
	time.Sleep(50 * time.Millisecond)
	if c, rows := store.snapshot(); c != "1" || len(rows) != 0 {
		t.Fatalf("cursor %s rows %+v: a first start records nothing from before it", c, rows)
	}
}
