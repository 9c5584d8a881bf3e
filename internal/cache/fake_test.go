package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scailabs/authzd/internal/authz"
)

// fakeUpstream plays SpiceDB for the cache's tests: a truth per question
// that changes at numbered revisions (tokens "r<N>"), answers at any
// revision, and a change stream the test delivers by hand (deliver), so
// that a test decides exactly when the cache learns of a write.
type fakeUpstream struct {
	t      testing.TB
	schema string

	mu      sync.Mutex
	rev     int                    // the head revision
	history map[string][]fakeValue // question key -> its values by revision
	queued  []authz.ChangeBatch    // committed, not yet delivered
	tuples  []authz.Tuple          // what Relationships reads (the mirror's load, the edge scan)
	stream  chan fakeDelivery      // the open stream's deliveries
	failAt  error                  // CheckAt's and CheckBulkAt's error, when set
	calls   map[string]int         // calls by method
	hooks   map[string]func()      // run inside a call: "barrier", "checkAt", "checkedAt"
	marks   []string               // resume marks written
	streams int                    // streams opened
	opened  chan struct{}          // signalled when a stream opens
}

type fakeValue struct {
	rev     int
	allowed bool
}

// fakeDelivery is one batch for the stream; applied is closed when the
// watcher has applied it (it asked for the next batch).
type fakeDelivery struct {
	batch   authz.ChangeBatch
	err     error
	applied chan struct{}
}

func newFake(t testing.TB) *fakeUpstream {
	return &fakeUpstream{t: t, schema: mustManifests(t).Schema(), rev: 1, history: map[string][]fakeValue{},
		calls: map[string]int{}, hooks: map[string]func(){}, opened: make(chan struct{}, 16)}
}

func token(rev int) string { return "r" + strconv.Itoa(rev) }

func (f *fakeUpstream) revOf(tok string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(tok, "r"))
	if err != nil {
		f.t.Errorf("not a fake revision: %q", tok)
	}
	return n
}

func qkey(q authz.Question) string { return q.ObjectID + "\x00" + q.SubjectID }

// valueAt is the truth of q at revision rev (false before any write): the
// last write to it or to its user in every tenant (a partner change).
func (f *fakeUpstream) valueAt(q authz.Question, rev int) bool {
	allowed, at := false, 0
	for _, k := range []string{qkey(q), everyTenant + "\x00" + q.SubjectID} {
		for _, v := range f.history[k] {
			if v.rev <= rev && v.rev > at {
				allowed, at = v.allowed, v.rev
			}
		}
	}
	return allowed
}

// everyTenant keys the history of a partner change, which reaches every tenant.
const everyTenant = "*"

// write commits a change of whether user may use the key in tenant (in
// every tenant for tenant "", a partner change) and queues it for the
// stream. It returns the write's token.
func (f *fakeUpstream) write(tenant, user string, allowed bool, writeID string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	k := qkey(question(tenant, user))
	if tenant == "" {
		k = everyTenant + "\x00" + user
	}
	f.history[k] = append(f.history[k], fakeValue{rev: f.rev, allowed: allowed})
	b := authz.ChangeBatch{Revision: token(f.rev), Untagged: writeID == "", Changes: []authz.RelationshipChange{{Operation: "touch", TenantID: tenant,
		Tuple: authz.Tuple{ResourceType: authz.TypeTenant, ResourceID: tenant, Relation: authz.RoleTenantAdmin, SubjectType: authz.TypeUser, SubjectID: user}}}}
	if tenant == "" {
		b.Changes[0].Tuple.ResourceType, b.Changes[0].Tuple.ResourceID = authz.TypePartner, "p"
	}
	if writeID != "" {
		b.WriteIDs = []string{writeID}
	}
	f.queued = append(f.queued, b)
	return token(f.rev)
}

// queue commits a batch of the test's own making.
func (f *fakeUpstream) queue(b authz.ChangeBatch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rev++
	b.Revision = token(f.rev)
	f.queued = append(f.queued, b)
}

// deliver sends every queued batch and a checkpoint down the open stream,
// and returns once the cache has applied them.
func (f *fakeUpstream) deliver() { f.deliverSome(-1, true) }

// deliverSome sends the first n queued batches (all when n < 0), then a
// checkpoint when asked, and returns once the cache has applied them.
func (f *fakeUpstream) deliverSome(n int, checkpoint bool) {
	f.t.Helper()
	f.mu.Lock()
	if n < 0 || n > len(f.queued) {
		n = len(f.queued)
	}
	batches := append([]authz.ChangeBatch(nil), f.queued[:n]...)
	f.queued = f.queued[n:]
	if checkpoint {
		batches = append(batches, authz.ChangeBatch{Revision: token(f.rev), Checkpoint: true})
	}
	stream := f.stream
	f.mu.Unlock()
	if stream == nil {
		f.t.Fatal("deliver: no stream is open")
	}
	for _, b := range batches {
		f.send(stream, fakeDelivery{batch: b})
	}
}

// breakStream fails the open stream.
func (f *fakeUpstream) breakStream() {
	f.mu.Lock()
	stream := f.stream
	f.stream = nil
	f.mu.Unlock()
	f.send(stream, fakeDelivery{err: errors.New("the fake stream broke")})
}

func (f *fakeUpstream) send(stream chan fakeDelivery, d fakeDelivery) {
	f.t.Helper()
	d.applied = make(chan struct{})
	select {
	case stream <- d:
	case <-time.After(10 * time.Second):
		f.t.Fatal("the cache did not read its stream within 10s")
	}
	if d.err != nil {
		return
	}
	select {
	case <-d.applied:
	case <-time.After(10 * time.Second):
		f.t.Fatal("the cache did not apply a batch within 10s")
	}
}

// waitStream waits until the cache has opened its n-th stream.
func (f *fakeUpstream) waitStream(n int) {
	f.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		f.mu.Lock()
		ok := f.streams >= n
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-f.opened:
		case <-deadline:
			f.t.Fatalf("the cache did not open stream %d within 10s", n)
		}
	}
}

func (f *fakeUpstream) hook(name string, fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hooks[name] = fn
}

// call counts a call and runs (once) the hook set for it, outside the lock.
func (f *fakeUpstream) call(name string) {
	f.mu.Lock()
	f.calls[name]++
	fn := f.hooks[name]
	delete(f.hooks, name)
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

func (f *fakeUpstream) count(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[name]
}

// Answering.

func (f *fakeUpstream) Question(c authz.Check) (authz.Question, error) {
	if c.Key != testKey {
		return authz.Question{}, authz.Errorf(authz.EINVALID, "unknown permission %q", c.Key)
	}
	return question(c.TenantID, c.Subject.ID), nil
}

func (f *fakeUpstream) Questions(checks []authz.Check) ([]authz.Question, string, error) {
	qs := make([]authz.Question, len(checks))
	token := ""
	for i, c := range checks {
		q, err := f.Question(c)
		if err != nil {
			return nil, "", err
		}
		qs[i], token = q, max(token, c.ConsistencyToken)
	}
	return qs, token, nil
}

func (f *fakeUpstream) Check(_ context.Context, c authz.Check) (authz.Decision, error) {
	f.call("check")
	f.mu.Lock()
	defer f.mu.Unlock()
	return authz.Decision{Allowed: f.valueAt(question(c.TenantID, c.Subject.ID), f.rev), CheckedAt: token(f.rev), Source: authz.SourceSpiceDB}, nil
}

func (f *fakeUpstream) CheckBulk(ctx context.Context, checks []authz.Check) ([]authz.Decision, error) {
	out := make([]authz.Decision, len(checks))
	for i, c := range checks {
		out[i], _ = f.Check(ctx, c)
	}
	return out, nil
}

func (f *fakeUpstream) CheckAt(ctx context.Context, at string, q authz.Question) (authz.Decision, error) {
	ds, err := f.CheckBulkAt(ctx, at, []authz.Question{q})
	if err != nil {
		return authz.Decision{}, err
	}
	return ds[0], nil
}

func (f *fakeUpstream) CheckBulkAt(_ context.Context, at string, qs []authz.Question) ([]authz.Decision, error) {
	f.call("checkAt")
	f.mu.Lock()
	err := f.failAt
	out := make([]authz.Decision, len(qs))
	for i, q := range qs {
		out[i] = authz.Decision{Allowed: f.valueAt(q, f.revOf(at)), CheckedAt: at, Source: authz.SourceSpiceDB}
	}
	f.mu.Unlock()
	f.call("checkedAt")
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (f *fakeUpstream) CheckHead(_ context.Context, q authz.Question) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.valueAt(q, f.rev), nil
}

// Following.

func (f *fakeUpstream) Changes(ctx context.Context, _ string) (func() (authz.ChangeBatch, error), error) {
	stream := make(chan fakeDelivery)
	f.mu.Lock()
	f.stream = stream
	f.streams++
	f.mu.Unlock()
	f.opened <- struct{}{}
	var last chan struct{}
	return func() (authz.ChangeBatch, error) {
		if last != nil {
			close(last) // the watcher asks for the next batch: it applied the last one
			last = nil
		}
		select {
		case d := <-stream:
			if d.err != nil {
				return authz.ChangeBatch{}, d.err
			}
			last = d.applied
			return d.batch, nil
		case <-ctx.Done():
			return authz.ChangeBatch{}, context.Canceled
		}
	}, nil
}

func (f *fakeUpstream) Barrier(context.Context) (string, error) {
	f.mu.Lock()
	tok := token(f.rev) // a barrier includes every write committed before it
	f.mu.Unlock()
	f.call("barrier")
	return tok, nil
}

func (f *fakeUpstream) Mark(_ context.Context, id string) error {
	f.call("mark")
	f.queue(authz.ChangeBatch{WriteIDs: []string{id}, Changes: []authz.RelationshipChange{{Operation: "touch", TenantID: "authzd/barrier",
		Tuple: authz.Tuple{ResourceType: authz.TypeTenant, ResourceID: "authzd/barrier", Relation: authz.RoleTenantViewer, SubjectType: authz.TypeUser, SubjectID: "authzd/barrier/m"}}}})
	f.mu.Lock()
	f.marks = append(f.marks, id)
	f.mu.Unlock()
	return nil
}

func (f *fakeUpstream) Schema(context.Context) (string, error) { return f.schema, nil }

func (f *fakeUpstream) Relationships(_ context.Context, _ string, resourceType, subjectType string, fn func(authz.Tuple) error) error {
	f.mu.Lock()
	tuples := append([]authz.Tuple(nil), f.tuples...)
	f.mu.Unlock()
	for _, t := range tuples {
		if t.ResourceType != resourceType || (subjectType != "" && t.SubjectType != subjectType) {
			continue
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

var _ Upstream = (*fakeUpstream)(nil)

// testKey is the one key the fake knows.
var testKey = func() authz.Key {
	k, err := authz.ParseKey("scaibunker:execute")
	if err != nil {
		panic(err)
	}
	return k
}()

func question(tenant, user string) authz.Question {
	return authz.Question{ObjectType: authz.TypeTenant, ObjectID: tenant, Permission: testKey.Relation(), SubjectType: authz.TypeUser, SubjectID: user}
}

func check(tenant, user string) authz.Check {
	return authz.Check{TenantID: tenant, Subject: authz.Subject{Kind: authz.SubjectUser, ID: user}, Key: testKey}
}

// startFake starts a cache in front of a new fake (the mirror off unless
// opts says otherwise) and waits until its first stream is open and
// delivered a checkpoint, so that it is ready.
func startFake(t *testing.T, opts Options, setup ...func(*fakeUpstream)) (*Cache, *fakeUpstream) {
	t.Helper()
	f := newFake(t)
	for _, fn := range setup {
		fn(f)
	}
	if opts.MirrorMax == 0 {
		opts.MirrorMax = -1
	}
	opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts.BeforeResume = func() { f.call("beforeResume") } // a break held open: the hook runs in it
	c := New(f, opts)
	t.Cleanup(c.Close)
	f.waitStream(1)
	f.deliver()
	if !c.Stats().Ready {
		t.Fatal("the cache is not ready after its stream started")
	}
	return c, f
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// mustCheck checks and fails the test on an error.
func mustCheck(t *testing.T, c *Cache, ch authz.Check) authz.Decision {
	t.Helper()
	d, err := c.Check(context.Background(), ch)
	if err != nil {
		t.Fatalf("check %s %s: %v", ch.TenantID, ch.Subject.ID, err)
	}
	return d
}

func (d fakeDelivery) String() string { return fmt.Sprintf("%+v", d.batch) }
