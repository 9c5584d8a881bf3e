package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/scailabs/authzd/internal/auditchain"
	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/latency"
)

// maxInFlight is how many batches a writer keeps sent and not yet answered:
// one committing, the next waiting behind it in Postgres, while a third is
// gathered. More would only queue in Postgres what can as well queue here,
// where it can still join a batch.
const maxInFlight = 2

// writer is one of the audit log's committers. It sends each batch on its
// own connection (pipeConn) as soon as it is gathered, chained after the
// head the previous batch will leave, and a reader goroutine completes the
// batches in the order they were sent. A batch is acknowledged only when its
// own commit has returned: the rows of every decision it answers are in
// flushed WAL.
//
// The chain stays linear because each batch moves the head from exactly the
// position it was hashed against (insertRowsIfHead), and the batches of one
// connection run in the order they were sent. When one fails or finds the
// head elsewhere (another replica wrote), those sent after it find the head
// elsewhere too and insert nothing; the writer then waits for what is in
// flight, and commits the batches that inserted nothing again under the
// head's lock, in their order, with the next batch.
type writer struct {
	a       *AuditLog
	flights chan *flight // sent batches, in order, to the reader

	mu       sync.Mutex
	cond     *sync.Cond // signalled when a flight completes
	inflight int
	pipe     *pipeConn // nil until connected, and after the connection failed
	head     auditchain.Head
	owned    bool      // head is this writer's, taken from a.head; false after any failure
	broken   bool      // a flight failed or missed: those after it miss too
	retry    []*flight // flights that inserted nothing and are to be committed again, in order
	// retryReady wakes the writer when the last flight in flight left retries behind.
	retryReady chan struct{}
	completed  chan struct{} // a flight completed (for gatherBehind)
	lastRows   int           // rows of the last batch sent
}

// flight is a batch sent and not yet answered.
type flight struct {
	batch []*pending
	rows  []auditchain.Row
	start time.Time // when the batch was gathered
	sent  time.Time
	pipe  *pipeConn
}

func (a *AuditLog) run() {
	defer a.wg.Done()
	w := &writer{a: a, flights: make(chan *flight, maxInFlight), retryReady: make(chan struct{}, 1),
		completed: make(chan struct{}, 1)}
	w.cond = sync.NewCond(&w.mu)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		w.read()
	}()
	// A shutdown out of time closes the connection: what is in flight fails at once.
	stop := context.AfterFunc(a.stopped, func() {
		w.mu.Lock()
		p := w.pipe
		w.mu.Unlock()
		if p != nil {
			p.close(true)
		}
	})
	defer stop()
	var rate arrivalRate
	for {
		var p *pending
		ok := true
		select {
		case p, ok = <-a.queue:
		case <-w.retryReady:
			// Flights to commit again and nothing new to carry them.
			w.mu.Lock()
			for w.inflight > 0 {
				w.cond.Wait()
			}
			retry := w.takeRetry()
			w.mu.Unlock()
			w.commitLocked(retry, nil, time.Now())
			continue
		}
		if !ok {
			break
		}
		batch, n := w.gatherBehind(p)
		w.mu.Lock()
		for w.inflight >= maxInFlight {
			w.cond.Wait()
		}
		idle := w.inflight == 0
		w.mu.Unlock()
		// With nothing in flight, the batch would commit at once: it lingers
		// only when more records are expected within the linger.
		if idle && a.linger > 0 && rate.expected(time.Now(), a.linger) >= 1 {
			batch, n = a.gather(batch, n, a.linger)
		}
		start := time.Now()
		rate.observe(start, n)
		w.commit(batch, start)
	}
	w.mu.Lock()
	for w.inflight > 0 {
		w.cond.Wait()
	}
	retry := w.takeRetry()
	w.mu.Unlock()
	if len(retry) > 0 {
		w.commitLocked(retry, nil, time.Now())
	}
	close(w.flights)
	<-readerDone
	w.mu.Lock()
	if w.pipe != nil {
		w.pipe.close(false)
		w.pipe = nil
	}
	w.mu.Unlock()
}

// gatherBehind gathers a batch from first while batches are in flight. It
// is sent behind them as soon as it holds as many rows as the last batch
// sent, so that a commit carries about as many decisions as the one before
// it, and otherwise when a batch in flight returns: the batch grows while the
// one ahead commits, which it could not have overtaken, and no timer is
// involved. With nothing in flight it returns what is queued at once.
func (w *writer) gatherBehind(first *pending) ([]*pending, int) {
	a := w.a
	batch, n := a.gather([]*pending{first}, len(first.events), 0)
	for {
		w.mu.Lock()
		inflight, last, broken := w.inflight, w.lastRows, w.broken
		w.mu.Unlock()
		if inflight == 0 || broken || (inflight < maxInFlight && (n >= last || n >= a.maxBatch)) {
			return batch, n
		}
		queue := a.queue
		if n >= a.maxBatch {
			queue = nil // full: wait for a slot only
		}
		select {
		case q, ok := <-queue:
			if !ok {
				return batch, n
			}
			batch, n = a.gather(append(batch, q), n+len(q.events), 0)
		case <-w.completed:
		}
	}
}

// takeRetry returns the flights to commit again and clears the failure; mu held, nothing in flight.
func (w *writer) takeRetry() []*flight {
	r := w.retry
	w.retry, w.broken = nil, false
	return r
}

// commit chains the batch and sends it, or, when this writer does not know
// the head, commits it under the head's lock. The records are claimed only
// once nothing is left to wait for (the flights ahead, the connection): those
// whose callers gave up before are dropped.
func (w *writer) commit(batch []*pending, start time.Time) {
	a := w.a
	if a.noChain {
		batch, n := claim(batch)
		if len(batch) == 0 {
			return
		}
		rows, err := batchRows(batch, n)
		if err != nil {
			a.finish(batch, n, start, time.Now(), time.Now(), err)
			return
		}
		ctx, cancel := context.WithTimeout(a.stopped, a.timeout)
		defer cancel()
		sent := time.Now()
		_, err = a.db.Pool.Exec(ctx, insertRows, rowArrays(rows)...)
		markSent(batch, sent)
		now := time.Now()
		a.finish(batch, n, start, now, now, err)
		return
	}
	w.mu.Lock()
	if w.broken || !w.owned || w.pipe == nil {
		for w.inflight > 0 {
			w.cond.Wait()
		}
		retry := w.takeRetry()
		if !w.owned && len(retry) == 0 {
			w.head, w.owned = a.head.take()
		}
		if !w.owned || len(retry) > 0 {
			w.owned = false
			w.mu.Unlock()
			w.commitLocked(retry, batch, start)
			return
		}
		if w.pipe == nil {
			ctx, cancel := context.WithTimeout(a.stopped, a.timeout)
			var err error
			w.pipe, err = dialPipe(ctx, a.db)
			cancel()
			if err != nil {
				w.pipe = nil
				a.head.put(w.head)
				w.owned = false
				w.mu.Unlock()
				a.finish(batch, countRows(batch), start, time.Now(), time.Now(), fmt.Errorf("connect the audit writer: %w", err))
				return
			}
		}
	}
	batch, n := claim(batch)
	if len(batch) == 0 {
		if w.inflight == 0 {
			a.head.put(w.head) // nothing sent: the head is free for this process's other writers
			w.owned = false
		}
		w.mu.Unlock()
		return
	}
	rows, err := batchRows(batch, n)
	if err != nil {
		w.mu.Unlock()
		a.finish(batch, n, start, time.Now(), time.Now(), err)
		return
	}
	from := w.head
	to := auditchain.Extend(from, rows)
	sent := time.Now()
	if err := w.pipe.send(append(rowArrays(rows), to.Seq, to.Hash, from.Seq, from.Hash), sent.Add(a.timeout)); err != nil {
		// Whatever this connection carries is lost with it; the reader fails those flights.
		w.pipe.close(false)
		w.pipe = nil
		w.broken, w.owned = true, false
		w.mu.Unlock()
		a.finish(batch, n, start, time.Now(), time.Now(), fmt.Errorf("send the audit rows: %w", err))
		return
	}
	w.head = to
	w.lastRows = len(rows)
	w.inflight++
	a.inflight.Add(1)
	f := &flight{batch: batch, rows: rows, start: start, sent: sent, pipe: w.pipe}
	w.mu.Unlock()
	markSent(batch, sent)
	w.flights <- f
}

// read completes the flights in the order they were sent.
func (w *writer) read() {
	a := w.a
	for f := range w.flights {
		res, err := f.pipe.receive(f.sent.Add(a.timeout))
		var ferr error
		var dead *pipeConn // closed after the lock is released: its cancel request may take a while
		done := true
		w.mu.Lock()
		w.inflight--
		a.inflight.Add(-1)
		switch {
		case err != nil:
			// The connection failed or the batch ran out of time: its outcome is
			// unknown, so its decisions are not given; the flights after it fail too.
			if w.pipe == f.pipe {
				dead = w.pipe
				w.pipe = nil
			}
			w.broken, w.owned = true, false
			ferr = fmt.Errorf("write the audit rows after the known chain head and commit: %w", err)
		case res.pgErr != nil:
			w.broken, w.owned = true, false
			if missingPartition(res.pgErr) {
				unclaim(f.batch)                          // rolled back: claimed again, or dropped, by commitLocked
				w.retry, done = append(w.retry, f), false // commitLocked makes the partition
			} else {
				ferr = fmt.Errorf("write the audit rows after the known chain head and commit: %w", res.pgErr)
			}
		case res.rows == int64(len(f.rows)):
			a.oneTrip.Add(1)
			if w.inflight == 0 && w.owned && !w.broken {
				// Nothing more in flight: the head is free for this process's other writers.
				a.head.put(w.head)
				w.owned = false
			}
		case res.rows == 0:
			// Another writer moved the head, or the batch before this one failed:
			// commit it again under the lock.
			if !w.broken {
				a.head.missed()
			}
			w.broken, w.owned = true, false
			unclaim(f.batch) // nothing written: claimed again, or dropped, by commitLocked
			w.retry, done = append(w.retry, f), false
		default:
			w.broken, w.owned = true, false
			ferr = fmt.Errorf("audit chain: %d of %d rows inserted", res.rows, len(f.rows))
		}
		select {
		case w.completed <- struct{}{}:
		default:
		}
		if w.inflight == 0 && len(w.retry) > 0 {
			select {
			case w.retryReady <- struct{}{}:
			default:
			}
		}
		w.cond.Broadcast()
		w.mu.Unlock()
		if dead != nil {
			dead.close(errors.Is(err, os.ErrDeadlineExceeded))
		}
		if done {
			if res.committed.IsZero() {
				res.committed = time.Now()
			}
			if res.statement.IsZero() {
				res.statement = res.committed
			}
			a.finish(f.batch, len(f.rows), f.start, res.statement, res.committed, ferr)
		}
	}
}

// commitLocked commits the retried flights' records and then batch's (either
// may be empty) in one transaction under the head's lock, and completes them.
// The records are claimed once the lock is held: those whose callers gave up
// while this writer waited for the lock, or before, are dropped.
func (w *writer) commitLocked(retry []*flight, batch []*pending, start time.Time) {
	a := w.a
	var all []*pending
	for _, f := range retry {
		all = append(all, f.batch...)
		if f.start.Before(start) {
			start = f.start
		}
	}
	all = append(all, batch...)
	if len(all) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(a.stopped, a.timeout)
	defer cancel()
	head, kept, err := a.lockedWrite(ctx, all)
	if missingPartition(err) {
		// Maintenance creates partitions months ahead; should a row still find
		// none (a clock far off, maintenance failing for months), make it and retry.
		unclaim(kept) // rolled back
		if err = a.ensurePartitions(ctx, kept); err == nil {
			head, kept, err = a.lockedWrite(ctx, kept)
		}
	}
	if err != nil {
		// Every record still waiting fails; a dropped one's caller has gone.
		now := time.Now()
		a.finish(all, countRows(all), start, now, now, err)
		return
	}
	a.head.put(head)
	if len(kept) == 0 {
		return
	}
	a.locked.Add(1)
	now := time.Now()
	a.finish(kept, countRows(kept), start, now, now, nil)
}

func (a *AuditLog) ensurePartitions(ctx context.Context, batch []*pending) error {
	months := map[time.Time]bool{}
	for _, p := range batch {
		for _, e := range p.events {
			months[monthOf(e.OccurredAt.UTC())] = true
		}
	}
	for m := range months {
		if err := a.db.EnsurePartitions(ctx, m, m); err != nil {
			return err
		}
	}
	return nil
}

// finish completes a batch: its requests' traces get the statement's and the
// commit's times, and every request its outcome. Any failure rolled back the
// whole batch: its callers answer 503, never an unaudited decision.
func (a *AuditLog) finish(batch []*pending, n int, start, statement, committed time.Time, err error) {
	if a.observe != nil {
		a.observe(n, committed.Sub(start), err)
	}
	if err != nil {
		err = authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable; no decision is given without its audit row")
	}
	for _, p := range batch {
		if p.trace != nil {
			p.trace.MarkAt(latency.Statement, statement)
			p.trace.MarkAt(latency.Committed, committed)
			p.trace.BatchRows(n)
		}
		p.done <- err
	}
}

func markSent(batch []*pending, at time.Time) {
	for _, p := range batch {
		p.trace.MarkAt(latency.Sent, at)
	}
}

// countRows is how many rows the batch's records hold.
func countRows(batch []*pending) int {
	n := 0
	for _, p := range batch {
		n += len(p.events)
	}
	return n
}

// batchRows is the batch's events as chain rows, in order.
func batchRows(batch []*pending, n int) ([]auditchain.Row, error) {
	rows := make([]auditchain.Row, 0, n)
	for _, p := range batch {
		for _, e := range p.events {
			r, err := chainRow(e)
			if err != nil {
				return nil, err
			}
			rows = append(rows, r)
		}
	}
	return rows, nil
}

// missingPartition reports Postgres's "no partition of relation found for
// row": a check violation that names no constraint.
func missingPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == sqlstateCheckViolation && pgErr.ConstraintName == ""
}

// lockedWrite commits the records of batch that claim keeps, after the head
// it locks, and returns the head it left and the records it claimed (none
// kept: it commits nothing and returns the head it found). Two round trips: the
// lock with BEGIN, then the rows, the head's move and COMMIT as one pipeline
// (an INSERT of arrays rather than a COPY, which costs two more round trips
// while every writer waits for the lock). It is the path of a writer that
// does not know the head: at start, and after another replica moved it.
func (a *AuditLog) lockedWrite(ctx context.Context, batch []*pending) (auditchain.Head, []*pending, error) {
	conn, err := a.db.Pool.Acquire(ctx)
	if err != nil {
		return auditchain.Head{}, nil, err
	}
	defer conn.Release()
	committed := false
	defer func() {
		if !committed {
			// Leave no transaction open on a pooled connection; one that cannot roll back is closed.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
				_ = conn.Conn().Close(ctx)
			}
		}
	}()
	// The head is one lock every replica shares, so a batch whose authzd
	// vanished mid-transaction (a partition between it and Postgres: no
	// FIN, no RST) must not hold it for as long as TCP takes to notice, or
	// every replica's decisions fail meanwhile. Postgres itself ends such a
	// transaction: no statement of it may run once it holds the lock, nor may it sit
	// idle, longer than a quarter of the batch's bound. A vanished replica
	// can leave one such transaction per writer queued on the lock, each
	// taking it in turn until Postgres ends it; with two writers that is
	// half the bound (with the default one, a quarter), so a replica waiting
	// for the lock (bounded by its context only) still gets it within its
	// own bound.
	// TestCluster/PostgresCutFromOneReplica showed the need: without these
	// bounds the other replica answered 503 for the whole 10 s cut; with half
	// the bound, two queued orphans still outlasted its 3 s.
	// The chained batches of pipeConn need no such bound: each is one
	// statement that Postgres has whole, its Sync included, before it runs
	// it, so it is never idle in a transaction.
	hold := max(a.timeout/4, 100*time.Millisecond).Milliseconds()
	var head auditchain.Head
	lock := &pgx.Batch{}
	lock.Queue("BEGIN")
	lock.Queue(fmt.Sprintf("SET LOCAL idle_in_transaction_session_timeout = %d", hold))
	lock.Queue("SELECT seq, hash FROM audit_chain_head FOR UPDATE").QueryRow(func(row pgx.Row) error {
		return row.Scan(&head.Seq, &head.Hash)
	})
	lock.Queue(fmt.Sprintf("SET LOCAL statement_timeout = %d", hold))
	if err := conn.SendBatch(ctx, lock).Close(); err != nil {
		return head, nil, fmt.Errorf("lock the audit chain head: %w", err)
	}
	kept, n := claim(batch)
	if len(kept) == 0 {
		return head, nil, nil // rolled back by the deferred ROLLBACK
	}
	markSent(kept, time.Now())
	rows, err := batchRows(kept, n)
	if err != nil {
		return head, kept, err
	}
	head = auditchain.Extend(head, rows)
	move := &pgx.Batch{}
	move.Queue(insertRows, rowArrays(rows)...)
	move.Queue("UPDATE audit_chain_head SET seq = $1, hash = $2", head.Seq, head.Hash)
	move.Queue("COMMIT")
	if err := conn.SendBatch(ctx, move).Close(); err != nil {
		return head, kept, fmt.Errorf("write the audit rows, move the chain head and commit: %w", err)
	}
	committed = true
	return head, kept, nil
}
