package cache

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// mirrorFeed applies the stream's updates to the mirror in a goroutine of
// its own, so that the stream is read at its own pace whatever the mirror's
// writes and rebuilds cost (SpiceDB drops a Watch client that falls too far
// behind: the benchmark's provisioning burst did, with the mirror applied in
// the stream's goroutine). The cache knows how far the mirror has got
// (decisionCache.mirrored), and fills that need more go to SpiceDB at a
// barrier. An error (a failed write, the bound exceeded) ends the stream
// and the feed. A feed lives across a stream's resume (see watcher.follow).
type mirrorFeed struct {
	w      *watcher
	failed atomic.Bool // set before the feed ends the stream on its own error
	wake   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc

	mu    sync.Mutex
	queue []feedItem
	m     *mirror // the current mirror (a rebuild replaces it); read after done
}

// feedItem is one Watch response for the mirror: its updates, and, for a
// checkpoint, the revision it is at and the number of the cache's last
// change when the cache applied it.
type feedItem struct {
	updates    []authz.RelationshipChange
	checkpoint bool
	through    string
	seq        uint64
}

func startMirrorFeed(w *watcher, m *mirror) *mirrorFeed {
	ctx, cancel := context.WithCancel(context.Background())
	f := &mirrorFeed{w: w, wake: make(chan struct{}, 1), done: make(chan struct{}), cancel: cancel, m: m}
	go f.run(ctx)
	return f
}

// push queues a response; it never blocks.
func (f *mirrorFeed) push(it feedItem) {
	f.mu.Lock()
	f.queue = append(f.queue, it)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// ended reports whether the feed has stopped applying (an error ended it).
// It is true before the stream the failure ends returns, so the watcher
// never resumes with a feed that no longer applies.
func (f *mirrorFeed) ended() bool { return f.failed.Load() }

// stop ends the feed and returns the mirror it last applied to.
func (f *mirrorFeed) stop() *mirror {
	f.cancel()
	<-f.done
	return f.m
}

func (f *mirrorFeed) run(ctx context.Context) {
	defer close(f.done)
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		f.mu.Lock()
		items := f.queue
		f.queue = nil
		f.mu.Unlock()
		for _, it := range items {
			if err := f.apply(ctx, it); err != nil {
				if ctx.Err() == nil {
					f.failed.Store(true)
					if errors.Is(err, errMirrorFull) {
						f.w.mirrorFull()
					} else {
						f.w.logger.Warn("the decision cache's mirror could not apply spicedb's changes; decision cache off until it resyncs", "err", err)
					}
					f.w.reset() // ends the current stream; it will not resume (ended)
				}
				return
			}
		}
	}
}

func (f *mirrorFeed) apply(ctx context.Context, it feedItem) error {
	m := f.m
	m.add(it.updates)
	if !it.checkpoint {
		return nil
	}
	if err := m.checkpoint(it.through); err != nil {
		return err
	}
	f.w.state.mirrored(m, it.seq)
	if !m.worn() {
		return nil
	}
	began := time.Now()
	n, err := m.rebuilt(ctx)
	if err != nil {
		return err
	}
	f.w.state.swapMirror(m, n)
	f.mu.Lock()
	f.m = n
	f.mu.Unlock()
	go m.retire()
	f.w.logger.Debug("decision cache mirror rebuilt", "relationships", n.rels.Load(), "applied", m.applied, "took", time.Since(began).String())
	return nil
}
