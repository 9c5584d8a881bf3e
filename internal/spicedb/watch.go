package spicedb

import (
	"context"
	"errors"
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
// with it. One stream per authzd process. Any error, gap or end of the stream
// empties the cache and makes it answer nothing until a new stream runs; a new
// stream starts from a fresh head revision with an empty cache (a resync),
// rather than resuming, so no change can fall between two streams.
type watcher struct {
	g      *Graph
	cache  *decisionCache
	logger *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu  sync.Mutex
	cut context.CancelFunc // ends the current stream

	scanned bool // the edges between tenants that predate the first stream are known (crossTenantEdges)

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
	wait := backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.3, Multiplier: 2, MaxInterval: 15 * time.Second}
	wait.Reset()
	down := false
	for {
		delivered, err := w.follow(ctx)
		w.cache.stop()
		if ctx.Err() != nil {
			return
		}
		if delivered {
			wait.Reset()
		}
		if errors.Is(err, context.Canceled) || status.Code(err) == codes.Canceled || errors.Is(err, errSchemaChanged) {
			// Ended on purpose (idle resync, probe or failed miss, which logged why).
			w.logger.Debug("spicedb watch stream restarted", "err", err)
		} else if !down || delivered {
			msg := "spicedb watch stream ended; decision cache off until it resyncs"
			if c := status.Code(err); c == codes.Unimplemented || c == codes.FailedPrecondition {
				msg = "spicedb watch unavailable (on Postgres it needs track_commit_timestamp=on); decision cache off, retrying"
			}
			w.logger.Warn(msg, "err", err)
			down = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait.NextBackOff()):
		}
	}
}

// follow runs one stream until it fails. delivered reports whether it
// delivered anything (so the backoff starts afresh after a healthy stream).
func (w *watcher) follow(ctx context.Context) (delivered bool, err error) {
	answered := w.cache.pendingIDs() // writes SpiceDB answered before the barrier below was asked for
	// The stream starts at a barrier, not at a head read: a barrier includes
	// every write answered before it was asked for (see decisionCache), so
	// the writes in answered are in it and need not come on the stream.
	start, err := w.g.barrier(ctx)
	if err != nil {
		return false, err
	}
	mr, err := w.loadMirror(ctx, start)
	if err != nil {
		return false, err
	}
	var feed *mirrorFeed
	defer func() {
		switch {
		case feed != nil:
			w.cache.stop() // no fill gets the mirror from now on
			feed.stop().retire()
		case mr != nil:
			mr.close()
		}
	}()
	if !w.scanned {
		// Edges between tenants written before this process started: the
		// stream, which starts at the same barrier, brings every later one.
		edges, err := w.g.crossTenantEdges(ctx, start)
		if err != nil {
			return false, err
		}
		w.linkEdges(edges)
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
	w.cache.start(start, answered, mr)
	if mr != nil {
		feed = startMirrorFeed(w, mr, scancel)
	}
	go w.barriers(sctx, scancel)
	for {
		resp, err := stream.Recv()
		if err != nil {
			return delivered, err
		}
		delivered = true
		if feed != nil && resp.GetSchemaUpdated() {
			return delivered, errSchemaChanged
		}
		seq := w.cache.apply(changeOf(resp))
		if feed != nil && (len(resp.GetUpdates()) > 0 || resp.GetIsCheckpoint()) {
			feed.push(feedItem{updates: resp.GetUpdates(), checkpoint: resp.GetIsCheckpoint(),
				through: resp.GetChangesThrough().GetToken(), seq: seq})
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
