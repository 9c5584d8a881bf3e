// Package outofband records relationship changes made straight in SpiceDB
// (with zed, another service, a migration script) as audit rows, so that a
// grant that never passed through authzd still shows up in its audit log.
//
// authzd tags every write it makes with a write id in SpiceDB's transaction
// metadata: the decision_id of the write's audit row. The recorder follows
// SpiceDB's Watch stream and, for each revision:
//   - carrying no authzd write id: records every change as an external row;
//   - carrying write ids: waits a grace period, then looks the ids up in the
//     audit log. A write id with no audit row (a forged tag, or a write whose
//     audit row failed to commit, so its caller got a 503) is recorded too.
//
// One replica records at a time (a Postgres advisory lock), from a cursor
// stored in Postgres, so a restarted or new leader resumes where the last
// one stopped. Rows get a decision_id derived from the revision and the
// change, and a revision replayed after a crash skips rows already written.
package outofband

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/scailabs/authzd/internal/authz"
)

// Actions of the rows the recorder writes (module authz.AuditModule).
const (
	ActionExternal = "relationship.external"
	// ActionGap records that SpiceDB could not replay the changes since the
	// stored cursor (it is older than SpiceDB keeps, or SpiceDB was replaced):
	// changes in between may be missing from the audit log.
	ActionGap = "relationship.external.gap"
)

// Client names the recorder in its rows' client column.
const Client = "authzd-watch"

// cursorName names the recorder's cursor row.
const cursorName = "external-changes"

// leaseKey is the advisory lock one replica holds while it records.
const leaseKey int64 = 0x61757468_7a640001 // "authzd" + 1

// Source is SpiceDB's change stream.
type Source interface {
	HeadRevision(ctx context.Context) (string, error)
	// FollowChanges calls fn for each revision after from, checkpoints
	// included (as batches without changes), until ctx ends or it fails.
	// A start revision SpiceDB refuses is reported as an error for which
	// CursorUnusable is true.
	FollowChanges(ctx context.Context, from string, fn func(authz.ChangeBatch) error) error
}

// Lease is held by the recording replica.
type Lease interface {
	Held(ctx context.Context) error
	Release(ctx context.Context)
}

// Store keeps the cursor and the lease, and finds authzd's own audit rows.
type Store interface {
	WatchCursor(ctx context.Context, name string) (string, error)
	SaveWatchCursor(ctx context.Context, name, revision string) error
	// AuthzdDecisions returns which ids name an audit row of module authzd.
	AuthzdDecisions(ctx context.Context, ids []string) (map[string]bool, error)
	// TryLease returns nil when another replica holds the lease.
	TryLease(ctx context.Context, key int64) (Lease, error)
}

// Audit commits audit rows.
type Audit interface {
	Record(ctx context.Context, events ...authz.Event) error
}

// Options tune the recorder; zero values take the defaults.
type Options struct {
	// Grace is how long a tagged change waits for the audit row of its
	// write before it counts as unaccounted for (default 30s).
	Grace time.Duration
	// Retry is how often a replica without the lease tries to take it, and
	// the pause after a failure (default 5s).
	Retry time.Duration
	// SaveEvery bounds how often the cursor is stored while only
	// checkpoints arrive (default 5s); after recorded rows it is stored at once.
	SaveEvery time.Duration
	// CursorUnusable tells a refused start revision (see Source).
	CursorUnusable func(error) bool
}

// Recorder follows SpiceDB and records out-of-band changes.
type Recorder struct {
	src    Source
	store  Store
	audit  Audit
	logger *slog.Logger
	o      Options

	leading atomic.Bool
}

// Leading reports whether this replica holds the lease and records.
func (r *Recorder) Leading() bool { return r.leading.Load() }

// New returns a recorder; Run starts it.
func New(src Source, store Store, audit Audit, logger *slog.Logger, o Options) *Recorder {
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.Retry <= 0 {
		o.Retry = 5 * time.Second
	}
	if o.SaveEvery <= 0 {
		o.SaveEvery = 5 * time.Second
	}
	if o.CursorUnusable == nil {
		o.CursorUnusable = func(error) bool { return false }
	}
	return &Recorder{src: src, store: store, audit: audit, logger: logger, o: o}
}

// Run records until ctx ends: it takes the lease when no other replica
// holds it, and follows SpiceDB while it holds it.
func (r *Recorder) Run(ctx context.Context) {
	for ctx.Err() == nil {
		lease, err := r.store.TryLease(ctx, leaseKey)
		if err == nil && lease != nil {
			r.leading.Store(true)
			err = r.lead(ctx, lease)
			r.leading.Store(false)
			lease.Release(context.WithoutCancel(ctx))
		}
		if err != nil && ctx.Err() == nil {
			r.logger.Warn("out-of-band change recorder paused; it resumes from its stored cursor", "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(r.o.Retry):
		}
	}
}

// entry is one revision on its way to the cursor.
type entry struct {
	batch authz.ChangeBatch
	due   time.Time // when a tagged batch is looked up; zero once settled
}

// lead follows SpiceDB from the stored cursor while the lease holds.
func (r *Recorder) lead(ctx context.Context, lease Lease) error {
	cursor, err := r.store.WatchCursor(ctx, cursorName)
	if err != nil {
		return err
	}
	if cursor == "" {
		// Nothing before authzd's first recorder is known to it: start at the head.
		if cursor, err = r.src.HeadRevision(ctx); err != nil {
			return err
		}
		if err := r.store.SaveWatchCursor(ctx, cursorName, cursor); err != nil {
			return err
		}
		r.logger.Info("out-of-band change recorder starts at SpiceDB's head", "revision", cursor)
	}
	err = r.follow(ctx, lease, cursor)
	if err != nil && r.o.CursorUnusable(err) {
		return r.gap(ctx, cursor, err)
	}
	return err
}

// follow takes the stream's revisions from cursor on, and settles tagged
// revisions as their grace ends also when the stream is quiet (not every
// datastore sends checkpoints while nothing changes).
func (r *Recorder) follow(ctx context.Context, lease Lease, cursor string) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	batches := make(chan authz.ChangeBatch)
	ended := make(chan error, 1)
	go func() {
		ended <- r.src.FollowChanges(sctx, cursor, func(b authz.ChangeBatch) error {
			select {
			case batches <- b:
				return nil
			case <-sctx.Done():
				return sctx.Err()
			}
		})
	}()
	stop := func(err error) error {
		cancel()
		<-ended
		return err
	}
	tick := time.NewTicker(min(r.o.Grace/2, time.Second))
	defer tick.Stop()
	f := &follower{r: r, ctx: ctx, lease: lease, saved: cursor, savedAt: time.Now()}
	for {
		select {
		case b := <-batches:
			if err := f.take(b); err != nil {
				return stop(err)
			}
		case <-tick.C:
			if err := f.settle(ctx); err != nil {
				return stop(err)
			}
			if err := f.advance(ctx); err != nil {
				return stop(err)
			}
		case err := <-ended:
			return err
		}
	}
}

// gap records that the changes after cursor cannot be replayed and moves the
// cursor to the head.
func (r *Recorder) gap(ctx context.Context, cursor string, cause error) error {
	head, err := r.src.HeadRevision(ctx)
	if err != nil {
		return err
	}
	if head == cursor {
		return cause // SpiceDB refuses its own head: not a gap, a failure; retry later
	}
	r.logger.Error("SpiceDB cannot replay changes since the recorder's cursor; changes made outside authzd in between are not in the audit log",
		"cursor", cursor, "head", head, "err", cause)
	e := r.event(ActionGap, uuid.NewSHA1(uuid.NameSpaceURL, []byte("authzd:gap:"+cursor+"\n"+head)).String(), head)
	e.Details = map[string]any{"from_revision": cursor, "to_revision": head, "reason": cause.Error()}
	if err := r.audit.Record(ctx, e); err != nil {
		return err
	}
	return r.store.SaveWatchCursor(ctx, cursorName, head)
}

func (r *Recorder) event(action, decisionID, revision string) authz.Event {
	return authz.Event{
		OccurredAt: time.Now(), Module: authz.AuditModule, Action: action, Decision: authz.DecisionAllowed,
		ZedToken: revision, DecisionID: decisionID, Client: Client,
	}
}

// follower is one leadership's walk along the stream.
type follower struct {
	r       *Recorder
	ctx     context.Context
	lease   Lease
	queue   []entry // revisions not yet behind the cursor, in stream order
	saved   string  // the stored cursor
	savedAt time.Time
}

// take handles one revision from the stream.
func (f *follower) take(b authz.ChangeBatch) error {
	ctx := f.ctx
	switch {
	case len(b.Changes) == 0: // a checkpoint
		f.queue = append(f.queue, entry{batch: b})
	case b.Untagged: // some transaction of the revision carried no authzd write id
		if err := f.record(ctx, b, nil); err != nil {
			return err
		}
		f.queue = append(f.queue, entry{batch: b})
	default:
		f.queue = append(f.queue, entry{batch: b, due: time.Now().Add(f.r.o.Grace)})
	}
	if err := f.settle(ctx); err != nil {
		return err
	}
	return f.advance(ctx)
}

// settle looks up the write ids of tagged revisions whose grace is over and
// records the changes of those no audit row accounts for.
func (f *follower) settle(ctx context.Context) error {
	now := time.Now()
	var ids []string
	for _, e := range f.queue {
		if !e.due.IsZero() && !now.Before(e.due) {
			for _, id := range e.batch.WriteIDs {
				ids = append(ids, authz.WriteIDOwner(id))
			}
		}
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := f.r.store.AuthzdDecisions(ctx, ids)
	if err != nil {
		return err
	}
	for i := range f.queue {
		e := &f.queue[i]
		if e.due.IsZero() || now.Before(e.due) {
			continue
		}
		var claimed []string
		for _, id := range e.batch.WriteIDs {
			if !found[authz.WriteIDOwner(id)] {
				claimed = append(claimed, id)
			}
		}
		if len(claimed) > 0 {
			if err := f.record(ctx, e.batch, claimed); err != nil {
				return err
			}
		}
		e.due = time.Time{}
	}
	return nil
}

// advance moves the stored cursor past the settled revisions at the front
// of the queue.
func (f *follower) advance(ctx context.Context) error {
	n := 0
	for n < len(f.queue) && f.queue[n].due.IsZero() {
		n++
	}
	if n == 0 {
		return nil
	}
	next := f.queue[n-1].batch.Revision
	recorded := false
	for _, e := range f.queue[:n] {
		recorded = recorded || len(e.batch.Changes) > 0
	}
	f.queue = append(f.queue[:0], f.queue[n:]...)
	if next == f.saved || (!recorded && time.Since(f.savedAt) < f.r.o.SaveEvery) {
		return nil
	}
	if err := f.r.store.SaveWatchCursor(ctx, cursorName, next); err != nil {
		return err
	}
	f.saved, f.savedAt = next, time.Now()
	return nil
}

// record writes one external row per change of b (skipping rows a replayed
// revision already has). claimed, when set, lists the write ids b carried
// that no audit row accounts for.
func (f *follower) record(ctx context.Context, b authz.ChangeBatch, claimed []string) error {
	if err := f.lease.Held(ctx); err != nil {
		return err // another replica may record from here on
	}
	events := make([]authz.Event, 0, len(b.Changes))
	ids := make([]string, 0, len(b.Changes))
	for _, c := range b.Changes {
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte("authzd:external:"+b.RevisionKey+"\n"+c.Operation+"\n"+c.Relationship)).String()
		e := f.r.event(ActionExternal, id, b.Revision)
		e.TenantID, e.ResourceType, e.ResourceID, e.Permission = c.TenantID, c.ResourceType, c.ResourceID, c.Relation
		e.Details = map[string]any{"operation": c.Operation, "relationship": c.Relationship}
		if len(claimed) > 0 {
			e.Details["claimed_write_ids"] = claimed
			e.Details["reason"] = "tagged as an authzd write, but no authzd audit row records that write"
		}
		events = append(events, e)
		ids = append(ids, id)
	}
	done, err := f.r.store.AuthzdDecisions(ctx, ids)
	if err != nil {
		return err
	}
	fresh := events[:0]
	for _, e := range events {
		if !done[e.DecisionID] {
			fresh = append(fresh, e)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := f.r.audit.Record(ctx, fresh...); err != nil {
		return err
	}
	for _, e := range fresh {
		f.r.logger.Warn("relationship changed outside authzd; recorded in the audit log",
			"operation", e.Details["operation"], "relationship", e.Details["relationship"], "revision", b.Revision)
	}
	return nil
}
