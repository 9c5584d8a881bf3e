package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// AuditLog writes audit rows with group commit: rows from concurrent requests
// are gathered into one COPY, and each Record returns only after the COPY
// holding its rows has committed. That keeps "no decision without its row"
// while the audit costs one round trip per batch, not per decision.
type AuditLog struct {
	db       *DB
	queue    chan *pending
	maxBatch int
	timeout  time.Duration
	observe  func(rows int, d time.Duration, err error)

	mu     sync.RWMutex // guards closed against sends on a closed queue
	closed bool
	wg     sync.WaitGroup
	// stopped is the parent of every COPY's context; abort cancels it when a
	// shutdown runs out of time.
	stopped context.Context
	abort   context.CancelFunc
}

type pending struct {
	events []authz.Event
	done   chan error
}

// AuditOptions tune the group commit.
type AuditOptions struct {
	Writers  int           // concurrent committers (default 2)
	MaxBatch int           // rows per COPY (default 1000)
	Timeout  time.Duration // bound on one COPY (default 3s)
	// Observe, when set, is told the size, duration and outcome of each batch.
	Observe func(rows int, d time.Duration, err error)
}

// NewAuditLog starts the writers.
func NewAuditLog(db *DB, o AuditOptions) *AuditLog {
	if o.Writers <= 0 {
		o.Writers = 2
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1000
	}
	if o.Timeout <= 0 {
		o.Timeout = 3 * time.Second
	}
	a := &AuditLog{db: db, queue: make(chan *pending, 4096), maxBatch: o.MaxBatch, timeout: o.Timeout, observe: o.Observe}
	a.stopped, a.abort = context.WithCancel(context.Background())
	for range o.Writers {
		a.wg.Add(1)
		go a.run()
	}
	return a
}

// Record commits the events and returns when they are durable. An error means
// they may not be; the caller must then not hand out the decision.
func (a *AuditLog) Record(ctx context.Context, events ...authz.Event) error {
	p := &pending{events: events, done: make(chan error, 1)}
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
		return authz.Wrap(authz.EUNAVAILABLE, ctx.Err(), "the audit log did not commit in time")
	}
}

// Close is Shutdown bounded only by the writers' own COPY timeout.
func (a *AuditLog) Close() { _ = a.Shutdown(context.Background()) }

// Shutdown stops accepting records, commits what is queued and waits for the
// writers, within ctx. When ctx ends first, the COPYs in flight are cancelled:
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
		<-done // a cancelled COPY returns at once
		return fmt.Errorf("audit log: queued records were not committed within the shutdown bound: %w", ctx.Err())
	}
}

func (a *AuditLog) run() {
	defer a.wg.Done()
	for p := range a.queue {
		batch := []*pending{p}
		n := len(p.events)
	gather:
		for n < a.maxBatch {
			select {
			case q, ok := <-a.queue:
				if !ok {
					break gather
				}
				batch = append(batch, q)
				n += len(q.events)
			default:
				break gather
			}
		}
		start := time.Now()
		err := a.insert(batch, n)
		if a.observe != nil {
			a.observe(n, time.Since(start), err)
		}
		if err != nil {
			err = authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable; no decision is given without its audit row")
		}
		for _, p := range batch {
			p.done <- err
		}
	}
}

var auditColumns = []string{"occurred_at", "module", "action", "actor_user_id", "tenant_id", "resource_type",
	"resource_id", "permission", "decision", "zed_token", "decision_id", "client", "request_id", "details"}

// insert writes the batch with one COPY, which commits as a single statement.
func (a *AuditLog) insert(batch []*pending, n int) error {
	ctx, cancel := context.WithTimeout(a.stopped, a.timeout)
	defer cancel()
	rows := make([][]any, 0, n)
	for _, p := range batch {
		for _, e := range p.events {
			var details []byte
			if len(e.Details) > 0 {
				var err error
				if details, err = json.Marshal(e.Details); err != nil {
					return fmt.Errorf("encode audit details: %w", err)
				}
			}
			rows = append(rows, []any{e.OccurredAt, e.Module, e.Action, e.ActorUserID, e.TenantID, e.ResourceType,
				e.ResourceID, e.Permission, e.Decision, e.ZedToken, e.DecisionID, e.Client, e.RequestID, details})
		}
	}
	_, err := a.db.Pool.CopyFrom(ctx, pgx.Identifier{"audit_events"}, auditColumns, pgx.CopyFromRows(rows))
	return err
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
	q := "SELECT id, occurred_at, module, action, actor_user_id, tenant_id, resource_type, resource_id, permission, " +
		"decision, zed_token, decision_id::text, client, request_id, details FROM audit_events"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, f.Limit+1)
	q += fmt.Sprintf(" ORDER BY occurred_at, id LIMIT $%d", len(args))

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
