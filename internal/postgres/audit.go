package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/latency"
)

// AuditLog writes audit rows with group commit: rows from concurrent requests
// are gathered into one insert, and each Record returns only after the insert
// holding its rows has committed. That keeps "no decision without its row"
// while the audit costs one round trip per batch, not per decision.
//
// Each batch extends the deployment's one hash chain (internal/auditchain):
// in one transaction it locks the chain head row, gives its rows the next
// sequence numbers and hashes, inserts them and moves the head. The lock is
// taken once per batch, so writers and replicas serialise per batch, not per row.
// A writer that knows the head sends each batch as one statement that does
// all of that, committed in the same round trip, and sends the next batch
// while the previous one commits (see writer); one that does not know it
// (at start, or after another replica moved it) locks the head first.
type AuditLog struct {
	db       *DB
	queue    chan *pending
	maxBatch int
	timeout  time.Duration
	observe  func(rows int, d time.Duration, err error)
	noChain  bool
	linger   time.Duration

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup
	// stopped is the parent of every batch's context; abort cancels it when a
	// shutdown runs out of time.
	stopped context.Context
	abort   context.CancelFunc

	head knownHead // where this process last left the chain: lets a batch skip the lock's round trip
	// batches committed after the known head in one round trip, and under the head's lock
	oneTrip, locked atomic.Int64
	inflight        atomic.Int64 // batches sent and not yet answered, over all writers
}

// Batches counts the chained batches committed in one round trip (after the
// head this process knew) and under the head's lock (two round trips).
func (a *AuditLog) Batches() (oneTrip, locked int64) { return a.oneTrip.Load(), a.locked.Load() }

type pending struct {
	ctx    context.Context // the caller's: once it is done, the record is dropped unless already in a batch
	events []authz.Event
	done   chan error
	trace  *latency.Trace // the request's stage marks, nil unless traced
	// state is waiting until a writer puts the record into a batch (batched)
	// or its caller gives up (abandoned), whichever comes first.
	state atomic.Int32
}

const (
	waiting int32 = iota
	batched
	abandoned
)

// claim keeps the records of batch whose callers still wait, marked as
// batched, and drops the others: a caller that has given up (its context is
// done) is answered 503, so its record must never be written. Writers claim
// just before the rows are chained and sent (on the lock path, once the
// head's lock is held), so a record is dropped if its caller gives up at any
// time before that, however long it waited in the queue, behind a failed
// batch or for a connection. A batch that is known to have written nothing
// is unclaimed and claimed again. The residual window: a caller that gives up
// after its record was claimed and before the commit returns (or whose batch
// fails after it was sent: timeout, lost connection) is answered 503, while
// the row may still commit if Postgres got the batch; the log then holds a
// decision that was not delivered, never a delivered one without its row.
// The batch itself is left as it was: kept is a copy when any were dropped.
func claim(batch []*pending) ([]*pending, int) {
	kept, n := batch, 0
	for i, p := range batch {
		if p.ctx.Err() == nil && p.state.CompareAndSwap(waiting, batched) {
			if len(kept) < len(batch) {
				kept = append(kept, p)
			}
			n += len(p.events)
		} else if len(kept) == len(batch) {
			kept = append(make([]*pending, 0, len(batch)-1), batch[:i]...)
		}
	}
	return kept, n
}

// unclaim returns records to waiting after their batch is known to have
// written nothing, so that the next attempt drops those whose callers gave up meanwhile.
func unclaim(batch []*pending) {
	for _, p := range batch {
		p.state.Store(waiting)
	}
}

// AuditOptions tune the group commit.
type AuditOptions struct {
	Writers  int           // concurrent committers (default 1: the chain head serialises them anyway)
	MaxBatch int           // rows per batch (default 1000)
	Timeout  time.Duration // bound on one batch (default 3s)
	// Linger is how long a writer that found the queue empty after the
	// first record waits for more before it commits, when its recent arrival
	// rate says another record should come within that time (0: commit what
	// is queued at once). Under load it trades a little latency for fewer
	// commits per second, and so less CPU per decision in Postgres and authzd.
	Linger time.Duration
	// Observe, when set, is told the size, duration and outcome of each batch.
	Observe func(rows int, d time.Duration, err error)
	// DisableChain writes rows without sequence numbers and hashes. It exists
	// only so the benchmark can show what the chain costs; verification then fails.
	DisableChain bool
}

// NewAuditLog starts the writers.
func NewAuditLog(db *DB, o AuditOptions) *AuditLog {
	if o.Writers <= 0 {
		o.Writers = 1
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	a := &AuditLog{db: db, queue: make(chan *pending, 4096), maxBatch: o.MaxBatch, timeout: o.Timeout, observe: o.Observe,
		noChain: o.DisableChain, linger: max(o.Linger, 0)}
	a.stopped, a.abort = context.WithCancel(context.Background())
	for range o.Writers {
		a.wg.Add(1)
		go a.run()
	}
	return a
}

// Record commits the events and returns when they are durable. An error means
// they may not be; the caller must then not hand out the decision. When ctx
// ends before a writer has put the events into a batch, they are dropped,
// never written (see claim for the window after that).
func (a *AuditLog) Record(ctx context.Context, events ...authz.Event) error {
	p := &pending{ctx: ctx, events: events, done: make(chan error, 1), trace: latency.From(ctx)}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return authz.Errorf(authz.EUNAVAILABLE, "authzd is shutting down")
	}
	select {
	case a.queue <- p:
		a.mu.RUnlock()
	case <-ctx.Done():
		a.mu.RUnlock()
		return authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "the audit log did not accept the record in time")
	}
	select {
	case err := <-p.done:
		return err
	case <-ctx.Done():
		if p.state.CompareAndSwap(waiting, abandoned) {
			// No batch holds it: no writer will write it.
			return authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "the audit log did not commit in time; the record was dropped")
		}
		return authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "the audit log did not commit in time")
	}
}

// Close is Shutdown bounded only by the writers' own batch timeout.
func (a *AuditLog) Close() { _ = a.Shutdown(context.Background()) }

// Shutdown stops accepting records, commits what is queued and waits for the
// writers, within ctx. When ctx ends first, the batches in flight are cancelled:
// the records still waiting fail (so no decision waiting on them is given) and
// Shutdown returns an error saying so.
func (a *AuditLog) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.queue)
	}
	a.mu.Unlock()
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		a.abort()
		return nil
	case <-ctx.Done():
		a.abort()
		<-done // a cancelled batch returns at once
		return fmt.Errorf("audit log: queued records were not committed within the shutdown bound: %w", ctx.Err())
	}
}

// arrivalRate estimates one writer's incoming rows per second from its own
// batches, as an exponentially decaying count (time constant arrivalWindow):
// steady arrivals converge to their rate, and a pause brings it to about
// zero. A writer lingers only when it expects another record within the
// linger, so a lightly loaded authzd commits each decision at once.
type arrivalRate struct {
	last   time.Time
	perSec float64
}

const arrivalWindow = 50 * time.Millisecond

func (r *arrivalRate) decayed(now time.Time) float64 {
	if r.last.IsZero() {
		return 0
	}
	return r.perSec * math.Exp(-now.Sub(r.last).Seconds()/arrivalWindow.Seconds())
}

// observe counts the rows of a batch gathered at now.
func (r *arrivalRate) observe(now time.Time, rows int) {
	r.perSec = r.decayed(now) + float64(rows)/arrivalWindow.Seconds()
	r.last = now
}

// expected is how many rows should arrive within d of now.
func (r *arrivalRate) expected(now time.Time, d time.Duration) float64 {
	return r.decayed(now) * d.Seconds()
}

// gather adds to batch (of n rows) what is queued, up to maxBatch rows; with
// a linger it waits up to that long for more once the queue is empty.
func (a *AuditLog) gather(batch []*pending, n int, linger time.Duration) ([]*pending, int) {
	var deadline <-chan time.Time
	for n < a.maxBatch {
		var q *pending
		ok := false
		select {
		case q, ok = <-a.queue:
		default:
			if linger == 0 {
				return batch, n
			}
			if deadline == nil {
				t := time.NewTimer(linger)
				defer t.Stop()
				deadline = t.C
			}
			select {
			case q, ok = <-a.queue:
			case <-deadline:
			}
		}
		if !ok {
			return batch, n // closed, or the linger is over
		}
		batch = append(batch, q)
		n += len(q.events)
	}
	return batch, n
}

var auditColumns = []string{"seq", "hash", "occurred_at", "module", "action", "actor_user_id", "tenant_id",
	"resource_type", "resource_id", "permission", "decision", "zed_token", "decision_id", "client", "request_id", "details"}

// chainRow is the row of an event as it is stored and hashed: occurred_at
// kept to the microseconds Postgres stores, the decision id in its canonical
// text, details as the exact JSON text the json column keeps.
func chainRow(e authz.Event) (auditchain.Row, error) {
	r := auditchain.Row{OccurredAt: e.OccurredAt.UTC().Truncate(time.Microsecond), Module: e.Module, Action: e.Action,
		ActorUserID: e.ActorUserID, TenantID: e.TenantID, ResourceType: e.ResourceType, ResourceID: e.ResourceID,
		Permission: e.Permission, Decision: e.Decision, ZedToken: e.ZedToken, Client: e.Client, RequestID: e.RequestID}
	id, err := uuid.Parse(e.DecisionID)
	if err != nil {
		return r, fmt.Errorf("audit decision id %q: %w", e.DecisionID, err)
	}
	r.DecisionID = id.String()
	if len(e.Details) > 0 {
		if b, ok := sourceOnly(e.Details); ok {
			r.Details = b
		} else if r.Details, err = json.Marshal(e.Details); err != nil {
			return r, fmt.Errorf("encode audit details: %w", err)
		}
	}
	return r, nil
}

// sourceDetails is the stored text of the details nearly every decision row
// carries, {"source": s} for each answer source, made once by json.Marshal
// so the bytes are exactly those the general path writes (and hashes). It
// spares every row a reflective encoding of a map.
var sourceDetails = func() map[string][]byte {
	m := map[string][]byte{}
	for _, src := range []string{authz.SourceCache, authz.SourceMirror, authz.SourceSpiceDB} {
		b, err := json.Marshal(map[string]any{"source": src})
		if err != nil {
			panic(err)
		}
		m[src] = b
	}
	return m
}()

// sourceOnly returns the precomputed text of details that hold only a known
// source. The bytes are shared: callers must not modify them.
func sourceOnly(details map[string]any) ([]byte, bool) {
	if len(details) != 1 {
		return nil, false
	}
	src, ok := details["source"].(string)
	if !ok {
		return nil, false
	}
	b, ok := sourceDetails[src]
	return b, ok
}

// knownHead is the chain head as this process last moved it. A writer takes
// it for one batch (so two writers of one process never race for the same
// position) and puts back where the batch left the chain. After a batch found
// the head moved by someone else (another replica is writing), the next few
// batches take the lock directly rather than pay a round trip that would
// likely miss too.
type knownHead struct {
	mu    sync.Mutex
	head  auditchain.Head
	valid bool // head is known and no writer holds it
	skip  int  // batches left that go straight to the lock
}

// missBackoff is how many batches take the lock after an optimistic miss.
const missBackoff = 16

func (k *knownHead) take() (auditchain.Head, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.skip > 0 {
		k.skip--
		return auditchain.Head{}, false
	}
	if !k.valid {
		return auditchain.Head{}, false
	}
	k.valid = false
	return k.head, true
}

// put records where a committed batch left the chain, unless a later batch
// has already put a newer head (sequence numbers only grow).
func (k *knownHead) put(h auditchain.Head) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if h.Seq >= k.head.Seq {
		k.head, k.valid = h, true
	}
}

func (k *knownHead) missed() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.skip = missBackoff
}

// insertRows inserts rows given as one array per column of auditColumns, in
// array order (unnest of several arrays zips them). Text goes in as text and
// is cast in SQL, so the json column keeps the exact bytes that were hashed.
var insertRows = "INSERT INTO audit_events (" + strings.Join(auditColumns, ", ") + ")\n" +
	"SELECT seq, hash, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id, permission,\n" +
	"       decision, zed_token, decision_id::uuid, client, request_id, details::json\n" +
	"FROM unnest($1::bigint[], $2::bytea[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],\n" +
	"            $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[], $16::text[])\n" +
	"  AS r(seq, hash, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id, permission,\n" +
	"       decision, zed_token, decision_id, client, request_id, details)"

// insertRowsIfHead is insertRows moving the head from ($19, $20) to ($17,
// $18) in the same statement; it inserts nothing when the head is elsewhere.
// The UPDATE locks the head row and, should another transaction move it
// first, re-reads it after that one commits (READ COMMITTED), so the rows are
// chained after exactly the head they were hashed against.
var insertRowsIfHead = "WITH moved AS (UPDATE audit_chain_head SET seq = $17, hash = $18 WHERE seq = $19 AND hash = $20 RETURNING 1)\n" +
	insertRows + "\nWHERE EXISTS (SELECT FROM moved)"

// rowArrays is insertRows's arguments: one array per column.
func rowArrays(rows []auditchain.Row) []any {
	n := len(rows)
	seq, hash, at := make([]*int64, n), make([][]byte, n), make([]time.Time, n) // seq and hash NULL when the chain is off
	text := make([][]string, 12)                                                // module .. request_id, in auditColumns order
	for i := range text {
		text[i] = make([]string, n)
	}
	details := make([]*string, n) // NULL when empty
	for i := range rows {
		r := &rows[i]
		if r.Hash != nil {
			seq[i], hash[i] = &r.Seq, r.Hash
		}
		at[i] = r.OccurredAt
		for j, v := range []string{r.Module, r.Action, r.ActorUserID, r.TenantID, r.ResourceType, r.ResourceID,
			r.Permission, r.Decision, r.ZedToken, r.DecisionID, r.Client, r.RequestID} {
			text[j][i] = v
		}
		if r.Details != nil {
			d := string(r.Details)
			details[i] = &d
		}
	}
	args := []any{seq, hash, at}
	for _, t := range text {
		args = append(args, t)
	}
	return append(args, details)
}

// DefaultEventLimit is the page size of a listing that names none.
const DefaultEventLimit = 100

// ListEvents returns up to f.Limit rows matching f in (occurred_at, id) order,
// and the cursor of the next page, nil at the end. A Limit of zero or less
// means DefaultEventLimit.
func (db *DB) ListEvents(ctx context.Context, f authz.EventFilter) ([]authz.Event, *authz.Cursor, error) {
	if f.Limit <= 0 {
		f.Limit = DefaultEventLimit
	}
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Module != "" {
		add("module = $%d", f.Module)
	}
	if f.TenantID != "" {
		add("tenant_id = $%d", f.TenantID)
	}
	if f.ActorUserID != "" {
		add("actor_user_id = $%d", f.ActorUserID)
	}
	if f.Decision != "" {
		add("decision = $%d", f.Decision)
	}
	if !f.Since.IsZero() {
		add("occurred_at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("occurred_at < $%d", f.Until)
	}
	if f.After != nil {
		args = append(args, f.After.OccurredAt, f.After.ID)
		where = append(where, fmt.Sprintf("(occurred_at, id) > ($%d, $%d)", len(args)-1, len(args)))
	}
	cols := "id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id, permission, " +
		"decision, zed_token, decision_id::text AS decision_id, client, request_id, details"
	q := "SELECT " + cols + " FROM audit_events"
	if f.Tenants != nil && f.TenantID == "" {
		// Each tenant's first rows from its (tenant_id, occurred_at, id) index, then
		// merged: tenant_id = ANY(...) would sort every row of the tenants instead.
		args = append(args, f.Tenants)
		where = append([]string{"tenant_id = reach.tenant"}, where...)
		q = fmt.Sprintf("SELECT %s FROM unnest($%d::text[]) AS reach(tenant) CROSS JOIN LATERAL (SELECT %s FROM audit_events",
			strings.ReplaceAll(cols, "decision_id::text AS decision_id", "decision_id"), len(args), cols)
	}
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY occurred_at, id LIMIT $%d", len(args))
	if f.Tenants != nil && f.TenantID == "" {
		q += fmt.Sprintf(") e ORDER BY occurred_at, id LIMIT $%d", len(args))
	}

	rows, err := db.Pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (authz.Event, error) {
		var e authz.Event
		var details []byte
		err := row.Scan(&e.ID, &e.OccurredAt, &e.Module, &e.Action, &e.ActorUserID, &e.TenantID, &e.ResourceType,
			&e.ResourceID, &e.Permission, &e.Decision, &e.ZedToken, &e.DecisionID, &e.Client, &e.RequestID, &details)
		if err == nil && len(details) > 0 {
			err = json.Unmarshal(details, &e.Details)
		}
		return e, err
	})
	if err != nil {
		return nil, nil, authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	if len(events) <= f.Limit {
		return events, nil, nil
	}
	events = events[:f.Limit]
	last := events[len(events)-1]
	return events, &authz.Cursor{OccurredAt: last.OccurredAt, ID: last.ID}, nil
}
