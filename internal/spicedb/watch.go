package spicedb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/cenkalti/backoff/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

// writeIDField names authzd's write id in a write's transaction metadata,
// which SpiceDB hands back on the Watch stream: it is how authzd recognises its
// own writes there exactly, without comparing opaque tokens.
const writeIDField = "authzd_write_id"

func writeMetadata(id string) *structpb.Struct {
	return &structpb.Struct{Fields: map[string]*structpb.Value{writeIDField: structpb.NewStringValue(id)}}
}

// watcher follows SpiceDB's Watch stream and keeps the decision cache in step
// with it. One stream per authzd process. When a stream breaks the cache
// answers nothing until the next one has caught up: that one resumes from the
// last checkpoint, keeping the cache's entries and the mirror (see follow), or,
// when it cannot (no checkpoint yet, a schema change, a mirror that failed, a
// cursor SpiceDB refuses), starts afresh at a barrier with an empty cache (a
// resync).
type watcher struct {
	g      *Graph
	cache  *decisionCache
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cut context.CancelFunc // ends the current stream
	// beforeResume, when set (by a test), runs before a resume writes its
	// marker: it holds the break open.
	beforeResume func()

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

func startWatcher(g *Graph, c *decisionCache, mirrorMax int, logger *slog.Logger) *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{g: g, cache: c, logger: logger, cancel: cancel, done: make(chan struct{}), mirrorMax: mirrorMax}
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
			w.cache.stop()
			return
		}
		if w.resumable(err, resumed, delivered) {
			w.cache.pause()
		} else {
			w.cache.stop()
			w.forget()
		}
		if delivered {
			wait.Reset()
		}
		if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled || errors.Is(err, errSchemaChanged) {
			// Ended on purpose (idle resync, probe or failed miss, which logged why).
			w.logger.Debug("spicedb watch stream restarted", "err", err, "resume", w.cursor != "")
		} else if !down || delivered {
			msg := "spicedb watch stream ended; decision cache off until it resumes or resyncs"
			if c := status.Code(err); c == codes.Unimplemented || c == codes.FailedPrecondition {
				msg = "spicedb watch unavailable (on Postgres it needs track_commit_timestamp=on); decision cache off, retrying"
			}
			w.logger.Warn(msg, "err", err)
			down = true
		}
		select {
		case <-ctx.Done():
			w.cache.stop()
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
		w.mu.Lock()
		hold := w.beforeResume
		w.mu.Unlock()
		if hold != nil {
			hold()
		}
		id := resumeMarkPrefix + randomKey()[:16]
		w.cache.resume(id) // before the write: the stream may deliver it before the call returns
		if err := w.g.mark(ctx, id); err != nil {
			return false, fmt.Errorf("%w: %w", errMarkFailed, err)
		}
		start = w.cursor
	} else {
		answered = w.cache.pendingIDs() // writes SpiceDB answered before the barrier below was asked for
		// The stream starts at a barrier, not at a head read: a barrier includes
		// every write answered before it was asked for (see decisionCache), so
		// the writes in answered are in it and need not come on the stream.
		if start, err = w.g.barrier(ctx); err != nil {
			return false, err
		}
		if w.mr, err = w.loadMirror(ctx, start); err != nil {
			return false, err
		}
		if !w.scanned {
			// Edges between tenants written before this process started: the
			// stream, which starts at the same barrier, brings every later one.
			edges, err := w.g.crossTenantEdges(ctx, start)
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
	stream, err := w.g.watch.Watch(sctx, &v1.WatchRequest{
		OptionalStartCursor: &v1.ZedToken{Token: start},
		OptionalUpdateKinds: []v1.WatchKind{
			v1.WatchKind_WATCH_KIND_INCLUDE_RELATIONSHIP_UPDATES,
			v1.WatchKind_WATCH_KIND_INCLUDE_SCHEMA_UPDATES,
			v1.WatchKind_WATCH_KIND_INCLUDE_CHECKPOINTS,
		},
	})
	if err != nil {
		return false, err
	}
	if !resume {
		w.cache.start(start, answered, w.mr)
		if w.mr != nil {
			w.feed = startMirrorFeed(w, w.mr)
			w.mr = nil
		}
	}
	go w.barriers(sctx, scancel)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		if resp.GetSchemaUpdated() && w.feed != nil {
			return delivered, errSchemaChanged // the mirror holds the old schema
		}
		seq := w.cache.apply(changeOf(resp))
		if w.feed != nil && (len(resp.GetUpdates()) > 0 || resp.GetIsCheckpoint()) {
			w.feed.push(feedItem{updates: resp.GetUpdates(), checkpoint: resp.GetIsCheckpoint(),
				through: resp.GetChangesThrough().GetToken(), seq: seq})
		}
		if resp.GetIsCheckpoint() && resp.GetChangesThrough().GetToken() != "" {
			w.cursor = resp.GetChangesThrough().GetToken()
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
	mr, edges, err := w.g.loadMirror(ctx, start, w.mirrorMax)
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
	w.cache.link(edges)
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
		case <-w.cache.barrierWanted:
		}
		seq := w.cache.lastSeq() // read before the write is sent: it covers every change up to seq
		token, err := w.g.barrier(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.logger.Warn("spicedb did not take the decision cache's barrier write; decision cache off until it resyncs", "err", err)
				cut()
			}
			return
		}
		w.cache.setBarrier(seq, token)
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
		_, err := w.g.schema.ReadSchema(pctx, &v1.ReadSchemaRequest{})
		cancel()
		if err != nil && ctx.Err() == nil {
			w.logger.Warn("spicedb did not answer the watcher's probe; decision cache off until it resyncs", "err", err)
			cut()
			return
		}
	}
}

// changeOf reads what a Watch response means for the cache.
func changeOf(resp *v1.WatchResponse) change {
	ch := change{global: resp.GetSchemaUpdated(), checkpoint: resp.GetIsCheckpoint()}
	seen := map[string]bool{}
	for _, u := range resp.GetUpdates() {
		o := u.GetRelationship().GetResource()
		t := tenantOf(o.GetObjectType(), o.GetObjectId())
		if e, ok := edgeOf(u.GetRelationship()); ok && u.GetOperation() != v1.RelationshipUpdate_OPERATION_DELETE {
			ch.links = append(ch.links, e) // a delete keeps the edge known (see decisionCache.dependents)
		}
		if t == "" {
			ch.global = true
			continue
		}
		if !seen[t] {
			seen[t] = true
			ch.tenants = append(ch.tenants, t)
		}
	}
	if id := resp.GetOptionalTransactionMetadata().GetFields()[writeIDField].GetStringValue(); id != "" {
		ch.writeIDs = append(ch.writeIDs, id)
	}
	for _, md := range resp.GetFullRevisionMetadata() {
		if id := md.GetFields()[writeIDField].GetStringValue(); id != "" && (len(ch.writeIDs) == 0 || ch.writeIDs[0] != id) {
			ch.writeIDs = append(ch.writeIDs, id)
		}
	}
	return ch
}
