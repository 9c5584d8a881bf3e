package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/scailabs/authzd/internal/authz"
)

// watcher follows SpiceDB's Watch stream and keeps the decision cache in step
// with it. One stream per authzd process. When a stream breaks the cache
// answers nothing until the next one has caught up: that one resumes from the
// last checkpoint, keeping the cache's entries and the mirror (see follow), or,
// when it cannot (no checkpoint yet, a schema change, a mirror that failed, a
// cursor SpiceDB refuses), starts afresh at a barrier with an empty cache (a
// resync).
type watcher struct {
	up     Following
	state  *decisionCache
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cut context.CancelFunc // ends the current stream
	// beforeResume, when set (Options.BeforeResume), runs before a resume
	// writes its marker.
	beforeResume func()
	rebuildMin   int64 // Options.MirrorRebuildMin

	scanned bool // the edges between tenants that predate the first stream are known (crossTenantEdges)

	// What a broken stream leaves for the next one to resume from (see
	// follow): the revision through which the cache has applied every
	// change (the last checkpoint's changes_through; "" when there is none
	// or the next stream must start afresh), and the mirror's feed, which
	// lives across a resume.
	cursor string
	feed   *mirrorFeed
	mr     *mirror // the mirror loaded at the last fresh start, until a feed takes it

	// mirrorMax bounds the relationships a mirror may hold; 0 turns the
	// mirror off (configured off, or SpiceDB outgrew the bound).
	mirrorMax int
}

// errSchemaChanged ends a stream whose mirror holds a schema SpiceDB no longer has.
var errSchemaChanged = errors.New("spicedb's schema changed; the mirror reloads")

// probeEvery bounds how long a SpiceDB that stopped answering (a silent
// partition leaves a stream open and quiet) can go unnoticed: the watcher asks
// SpiceDB this often and ends the stream, emptying the cache, if it does not
// answer within probeTimeout.
const (
	probeEvery   = time.Second
	probeTimeout = 2 * time.Second
)

// reset ends the current stream (the cache empties and resyncs). The check
// path calls it when SpiceDB fails to answer a miss, so that the cache never
// keeps answering for a SpiceDB that cannot.
func (w *watcher) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cut != nil {
		w.cut()
	}
}

func startWatcher(c *Cache, mirrorMax int, opts Options) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{up: c.up, state: c.state, logger: c.logger, cancel: cancel, done: make(chan struct{}), mirrorMax: mirrorMax,
		beforeResume: opts.BeforeResume, rebuildMin: opts.MirrorRebuildMin}
	go w.run(ctx)
	return w
}

func (w *watcher) close() {
	w.cancel()
	<-w.done
}

func (w *watcher) run(ctx context.Context) {
	defer close(w.done)
	defer w.forget()
	wait := backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.3, Multiplier: 2, MaxInterval: 15 * time.Second}
	wait.Reset()
	down := false
	for {
		resumed := w.cursor != ""
		delivered, err := w.follow(ctx)
		if ctx.Err() != nil {
			w.state.stop()
			return
		}
		if w.resumable(err, resumed, delivered) {
			w.state.pause()
		} else {
			w.state.stop()
			w.forget()
		}
		if delivered {
			wait.Reset()
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, errSchemaChanged) {
			// Ended on purpose (idle resync, probe or failed miss, which logged why).
			w.logger.Debug("spicedb watch stream restarted", "err", err, "resume", w.cursor != "")
		} else if !down || delivered {
			msg := "spicedb watch stream ended; decision cache off until it resumes or resyncs"
			if errors.Is(err, authz.ErrNoWatch) {
				msg = "spicedb watch unavailable (on Postgres it needs track_commit_timestamp=on); decision cache off, retrying"
			}
			w.logger.Warn(msg, "err", err)
			down = true
		}
		select {
		case <-ctx.Done():
			w.state.stop()
			return
		case <-time.After(wait.NextBackOff()):
		}
	}
}

// resumable says whether the next stream may resume where the one that
// just ended stopped, keeping the cache's entries and the mirror. It may
// when a checkpoint gave a cursor, the schema did not change, the mirror's
// feed (if any) is still applying, and, for a stream that was itself a
// resume, it delivered something: SpiceDB refuses a cursor older than its
// garbage-collection window (or from another datastore) when the stream
// opens, and such a refusal must lead to a fresh start rather than to
// resuming from the same cursor forever.
func (w *watcher) resumable(err error, resumed, delivered bool) bool {
	if w.cursor == "" || errors.Is(err, errSchemaChanged) || (resumed && !delivered && !errors.Is(err, errMarkFailed)) {
		return false
	}
	// A feed ends only on its own error (a failed write, the mirror's bound
	// exceeded): the mirror then misses changes, so start afresh.
	return w.feed == nil || !w.feed.ended()
}

// forget drops what a resume would have used: the next stream starts afresh.
func (w *watcher) forget() {
	w.cursor = ""
	if w.feed != nil {
		w.feed.stop().retire()
		w.feed = nil
	}
	if w.mr != nil {
		w.mr.close()
		w.mr = nil
	}
}

// errMarkFailed is a resume whose marker write SpiceDB did not take (it is
// still unreachable): the cursor is not at fault, the next stream resumes.
var errMarkFailed = errors.New("the resume marker was not written")

// follow runs one stream until it fails. delivered reports whether it
// delivered anything (so the backoff starts afresh after a healthy stream).
//
// A stream starts afresh (w.cursor empty) at a barrier with an empty cache
// and a mirror loaded at that barrier, or resumes from w.cursor after a
// break, keeping the cache and the mirror: it then delivers every change
// after the last checkpoint the cache applied, each dropping what it can
// affect as on any stream, and the cache answers again once the stream has
// delivered a mark written after the break (decisionCache.resume), so no
// change committed during the break can be missed.
func (w *watcher) follow(ctx context.Context) (delivered bool, err error) {
	var start string
	var answered []string
	resume := w.cursor != ""
	if resume {
		if w.beforeResume != nil {
			w.beforeResume()
		}
		id := authz.ResumeMarkPrefix + randomID()
		w.state.resume(id) // before the write: the stream may deliver it before the call returns
		if err := w.up.Mark(ctx, id); err != nil {
			return false, fmt.Errorf("%w: %w", errMarkFailed, err)
		}
		start = w.cursor
	} else {
		answered = w.state.pendingIDs() // writes SpiceDB answered before the barrier below was asked for
		// The stream starts at a barrier, not at a head read: a barrier includes
		// every write answered before it was asked for (see decisionCache), so
		// the writes in answered are in it and need not come on the stream.
		if start, err = w.up.Barrier(ctx); err != nil {
			return false, err
		}
		if w.mr, err = w.loadMirror(ctx, start); err != nil {
			return false, err
		}
		if !w.scanned {
			// Edges between tenants written before this process started: the
			// stream, which starts at the same barrier, brings every later one.
			edges, err := crossTenantEdges(ctx, w.up, start)
			if err != nil {
				return false, err
			}
			w.linkEdges(edges)
		}
	}
	sctx, scancel := context.WithCancel(ctx)
	defer scancel()
	w.mu.Lock()
	w.cut = scancel
	w.mu.Unlock()
	go w.probe(sctx, scancel)
	next, err := w.up.Changes(sctx, start)
	if err != nil {
		return false, err
	}
	if !resume {
		w.state.start(start, answered, w.mr)
		if w.mr != nil {
			w.feed = startMirrorFeed(w, w.mr)
			w.mr = nil
		}
	}
	go w.barriers(sctx, scancel)
	for {
		b, err := next()
		if err != nil {
			return delivered, err
		}
		delivered = true
		if b.SchemaChanged && w.feed != nil {
			return delivered, errSchemaChanged // the mirror holds the old schema
		}
		seq := w.state.apply(changeOf(b))
		if w.feed != nil && (len(b.Changes) > 0 || b.Checkpoint) {
			w.feed.push(feedItem{updates: b.Changes, checkpoint: b.Checkpoint, through: b.Revision, seq: seq})
		}
		if b.Checkpoint && b.Revision != "" {
			w.cursor = b.Revision
		}
	}
}

// loadMirror loads a mirror at the stream's start barrier, and learns the
// edges between tenants from it (the copy reads every relationship). Nil
// when the mirror is off or SpiceDB holds more than it may.
func (w *watcher) loadMirror(ctx context.Context, start string) (*mirror, error) {
	if w.mirrorMax <= 0 {
		return nil, nil
	}
	began := time.Now()
	mr, edges, err := loadMirror(ctx, w.up, start, w.mirrorMax, w.rebuildMin)
	if errors.Is(err, errMirrorFull) {
		w.mirrorFull()
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	w.logger.Debug("decision cache mirror loaded", "relationships", mr.rels.Load(), "took", time.Since(began).String())
	if !w.scanned {
		w.linkEdges(edges)
	}
	return mr, nil
}

// mirrorFull turns the mirror off for the life of the process.
func (w *watcher) mirrorFull() {
	w.logger.Warn("spicedb holds more relationships than AUTHZ_CACHE_MIRROR_MAX; decision cache misses go to spicedb", "max", w.mirrorMax)
	w.mirrorMax = 0
}

// linkEdges tells the cache the edges between tenants that predate the first stream.
func (w *watcher) linkEdges(edges [][2]string) {
	if len(edges) > 0 {
		w.logger.Warn("relationships in spicedb link tenants (not written by authzd); the decision cache drops a tenant on changes to the tenants it depends on", "edges", len(edges))
	}
	w.state.link(edges)
	w.scanned = true
}

// barriers sends a barrier whenever a fill waits for one (see
// decisionCache.barrierFor), one at a time: every fill waiting when one is
// sent is served by it. A barrier that fails ends the stream, like a failed
// miss: the cache must not go on answering for a SpiceDB that cannot.
func (w *watcher) barriers(ctx context.Context, cut context.CancelFunc) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.state.barrierWanted:
		}
		seq := w.state.lastSeq() // read before the write is sent: it covers every change up to seq
		token, err := w.up.Barrier(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.logger.Warn("spicedb did not take the decision cache's barrier write; decision cache off until it resyncs", "err", err)
				cut()
			}
			return
		}
		w.state.setBarrier(seq, token)
	}
}

// probe ends the stream when SpiceDB stops answering a cheap call. Its ticker
// loop looks like internal/postgres's every but stays apart: it ends itself on
// the first failed probe, which every (run until ctx ends) does not do, and
// the two packages share no code for a loop of a few lines.
func (w *watcher) probe(ctx context.Context, cut context.CancelFunc) {
	t := time.NewTicker(probeEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		_, err := w.up.Schema(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			w.logger.Warn("spicedb did not answer the watcher's probe; decision cache off until it resyncs", "err", err)
			cut()
			return
		}
	}
}
