// Package cache is authzd's decision cache: SpiceDB's answers to checks,
// kept by tenant and dropped as SpiceDB's Watch stream delivers the changes
// that could alter them (state.go); misses answered by a mirror of SpiceDB's
// relationships inside this process (mirror.go) or by SpiceDB at a barrier
// revision (check.go, where every check is decided); the stream's follower
// (watch.go) and a verifier sampling answers against SpiceDB (verify.go).
//
// All it needs of SpiceDB is an Upstream (upstream.go). SpiceDB stays the
// only source of truth: every answer the cache gives is one SpiceDB gave, or
// SpiceDB's own engine gave on the mirror, at a revision that includes every
// change the stream had delivered for its tenant.
package cache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"time"

	"golang.org/x/sync/singleflight"
)

// DefaultMirrorMax bounds the mirror at 250,000 relationships:
// BenchmarkMirror measured 2.4 KB of heap per relationship (datastore, index
// and revisions), so about 600 MB.
const DefaultMirrorMax = 250_000

// DefaultEntries is the answers the cache holds when Options.Entries is 0.
const DefaultEntries = 1 << 20

// Options configures a Cache. Zero values are the defaults.
type Options struct {
	// Entries bounds the answers held (DefaultEntries when 0).
	Entries int
	// MirrorMax bounds the relationships the mirror holds: 0 means
	// DefaultMirrorMax, a negative value turns the mirror off (misses then
	// go to SpiceDB at a barrier).
	MirrorMax int
	// VerifyRate is the share of cache answers re-checked against SpiceDB in
	// the background (0 to 1).
	VerifyRate float64
	// ObserveWatchLag, when set, is told how long the stream took to deliver
	// each of authzd's own writes after SpiceDB answered it.
	ObserveWatchLag func(time.Duration)
	// Logger receives the cache's warnings (slog.Default when nil).
	Logger *slog.Logger
	// MirrorRebuildMin is the fewest applied updates that make a mirror
	// worth copying afresh (see mirror.worn); 0 means 20,000. Tests lower it.
	MirrorRebuildMin int64
	// BeforeResume, when set, runs before a resumed stream writes its marker:
	// tests hold a break open with it.
	BeforeResume func()
}

// Cache answers checks in front of an Upstream. It satisfies internal/http's
// Checker.
type Cache struct {
	up      Upstream
	state   *decisionCache
	watcher *watcher
	logger  *slog.Logger
	fills   singleflight.Group

	verify     chan verifyRequest
	verifyRate float64
	stopVerify context.CancelFunc
	verifyDone chan struct{}
}

// New starts a cache in front of up: its change stream, and its verifier
// when VerifyRate is set. The cache answers nothing until its stream has
// started; until then every check goes to up. The caller must also tell the
// cache of its own writes to up (Wrote).
func New(up Upstream, opts Options) *Cache {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MirrorMax == 0 {
		opts.MirrorMax = DefaultMirrorMax
	}
	if opts.MirrorRebuildMin <= 0 {
		opts.MirrorRebuildMin = mirrorRebuildMin
	}
	c := &Cache{up: up, state: newDecisionCache(opts.Entries), logger: opts.Logger}
	c.state.observeLag = opts.ObserveWatchLag
	if opts.VerifyRate > 0 {
		c.verify, c.verifyRate = make(chan verifyRequest, 64), opts.VerifyRate
		ctx, cancel := context.WithCancel(context.Background())
		c.stopVerify, c.verifyDone = cancel, make(chan struct{})
		go func() {
			defer close(c.verifyDone)
			c.verifier(ctx)
		}()
	}
	c.watcher = startWatcher(c, max(opts.MirrorMax, 0), opts)
	return c
}

// Close stops the stream and the verifier; the cache then answers nothing
// and hands every check to its Upstream.
func (c *Cache) Close() {
	if c.stopVerify != nil {
		c.stopVerify()
		<-c.verifyDone
	}
	c.watcher.close()
}

// Shutdown is Close within ctx.
func (c *Cache) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Close()
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wrote tells the cache of one of authzd's writes SpiceDB took: the write id
// in its transaction metadata and the zed token SpiceDB answered with. A
// check carrying that token may be answered from the cache once the stream
// has delivered the write.
func (c *Cache) Wrote(id, token string) { c.state.wrote(id, token) }

// Delivered reports whether the stream has delivered the write of token
// (and a checkpoint followed): a check carrying it may be answered here.
func (c *Cache) Delivered(token string) bool { return c.state.hasDelivered(token) }

// Reset ends the current stream: the cache answers nothing until the next
// one has resumed or resynced. The cache calls it when SpiceDB fails one of
// its misses, so that it never keeps answering for a SpiceDB that cannot.
func (c *Cache) Reset() { c.watcher.reset() }

// Stats reports the cache's state for metrics.
func (c *Cache) Stats() Stats { return c.state.stats() }

// randomID is 16 random hex digits (a resume mark's id).
func randomID() string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return hex.EncodeToString(b)
}

// MirrorCurrent reports whether a mirror is loaded and has applied every
// change the stream has delivered (the mirror is fed in a goroutine of its
// own, so it can trail the stream by a moment).
func (c *Cache) MirrorCurrent() bool {
	c.state.mu.RLock()
	defer c.state.mu.RUnlock()
	return c.state.mirror != nil && c.state.mirrorSeq >= c.state.seq
}
