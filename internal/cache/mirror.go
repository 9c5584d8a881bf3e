package cache

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	caveattypes "github.com/authzed/spicedb/pkg/caveats/types"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/datalayer"
	spembedded "github.com/authzed/spicedb/pkg/embedded"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/validationfile"
	"google.golang.org/protobuf/types/known/structpb"
	"gopkg.in/yaml.v3"

	"github.com/scailabs/authzd/internal/authz"
)

// mirror is a copy of SpiceDB's relationships and schema inside this
// process, kept current by the same Watch stream as the decision cache. It
// answers the cache's misses with SpiceDB's own engine, called in-process
// (pkg/embedded), so no rule of the schema is evaluated twice, but every read
// of the walk is a memory read in this process instead of a query to the
// datastore behind the real SpiceDB (a cold walk is 7-10 datastore
// reads, and 41% of the benchmark's Zipf questions are first-time questions
// no cache can hold). The engine runs on SpiceDB's memory datastore, which
// holds only the schema: every read of relationships is served from an index
// of our own (mirrorindex.go), and a read the index cannot serve exactly
// fails the check, which then goes to SpiceDB (a slower answer, never a
// wrong one). Holding the relationships once instead of also in the memory
// datastore's radix trees cut authzd's live heap on the benchmark's 1,000
// tenants by about three quarters (docs/performance.md), and with it the
// garbage collector's marking.
//
// The mirror never runs ahead of the stream and never shows a state SpiceDB
// did not have. It is loaded at a stream's start barrier (every relationship
// at exactly that revision), and the stream's updates are applied only at
// checkpoints, all updates since the last checkpoint at once, while no check
// reads it (mu): a checkpoint means every transaction committed up to its
// point has been delivered, so the mirror then holds exactly SpiceDB's state
// at that point, never half a transaction and never one transaction without
// another that committed before it. Between checkpoints it holds the state
// of the last one, and the decision cache knows which of its changes that
// state covers (decisionCache.mirrored): a fill reads the mirror only when
// it covers every change to its tenant the cache has applied, otherwise it
// goes to SpiceDB at a barrier as before. A schema change ends the stream
// (the next stream loads a new mirror with the new schema).
//
// One mirror serves one stream: a resync drops it and loads a new one.
type mirror struct {
	ds    *indexedStore       // SpiceDB's memory datastore (the schema) with relationship reads served by idx
	dl    datalayer.DataLayer // how the schema is written to ds
	idx   *relIndex           // its relationships by object and relation (mirrorindex.go)
	perms *spembedded.Permissions

	// mu is held for reading by every check and for writing while a
	// checkpoint's updates are applied or the mirror closes.
	mu     sync.RWMutex
	closed bool // a check that got the mirror just before it closed fails (and asks SpiceDB)
	// through is the checkpoint (or start barrier) whose state the mirror
	// holds: the revision its answers are reported at. Atomic, so that a
	// checkpoint that brings no updates moves it without the write lock.
	through atomic.Pointer[string]

	schema string   // the schema text it was loaded with
	types  []string // the schema's object definitions

	max        int64        // relationships bound
	rebuildMin int64        // the fewest applied updates that make it worn
	rels       atomic.Int64 // relationships held: exact at a load, then counting every touch as new (over, never under)
	// applied counts the updates applied since the mirror was loaded.
	applied int64

	// pending are the updates delivered since the last checkpoint, the last
	// update of each relationship winning (the order within a revision and
	// between revisions is the stream's).
	pending map[string]authz.RelationshipChange
	order   []string
}

// The profiler label on the mirror's walks: CPU profiles of authzd show
// ProfileLabel=ProfileLabelMirror on the samples of SpiceDB's engine
// answering cache misses in this process.
const (
	ProfileLabel       = "authzd"
	ProfileLabelMirror = "mirror"
)

// errMirrorFull reports a SpiceDB with more relationships than the mirror may hold.
var errMirrorFull = errors.New("spicedb holds more relationships than the mirror may hold")

// mirrorLoadTimeout bounds loading a mirror at a stream start.
const mirrorLoadTimeout = 5 * time.Minute

// loadMirror copies SpiceDB's schema and every relationship at exactly the
// revision at (a barrier) into a new mirror. edges are the relationships that
// link two tenants (edgeOf), which the copy reads anyway. It fails with
// errMirrorFull when SpiceDB holds more than max relationships.
func loadMirror(ctx context.Context, up Following, at string, max int, rebuildMin int64) (_ *mirror, edges [][2]string, err error) {
	ctx, cancel := context.WithTimeout(ctx, mirrorLoadTimeout)
	defer cancel()
	schema, err := up.Schema(ctx)
	if err != nil {
		return nil, nil, err
	}
	mr, err := newMirror(ctx, schema, int64(max), rebuildMin)
	if err != nil {
		return nil, nil, err
	}
	mr.setThrough(at)
	err = mr.copyFrom(ctx, up, at, func(t authz.Tuple) {
		if e, ok := edgeOf(t); ok {
			edges = append(edges, e)
		}
	})
	if err != nil {
		mr.close()
		return nil, nil, err
	}
	return mr, edges, nil
}

// newMirror starts an empty mirror with the schema text. The schema is
// written the way SpiceDB loads its bootstrap files (validated and
// annotated as its WriteSchema does).
func newMirror(ctx context.Context, schemaText string, max, rebuildMin int64) (_ *mirror, err error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: schemaText}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("parse spicedb's schema for the mirror: %w", err)
	}
	// Reads go to the head revision only, so the memory datastore need
	// not keep old revisions readable for long.
	mem, err := datastore.NewDatastore(ctx, datastore.WithEngine(datastore.MemoryEngine), datastore.WithGCWindow(time.Minute),
		datastore.WithRevisionQuantization(time.Second), datastore.WithEnableDatastoreMetrics(false))
	if err != nil {
		return nil, fmt.Errorf("start the mirror's datastore: %w", err)
	}
	idx := newRelIndex()
	ds := &indexedStore{Datastore: mem, idx: idx}
	mr := &mirror{ds: ds, dl: datalayer.NewDataLayer(ds), idx: idx, schema: schemaText, max: max, rebuildMin: rebuildMin,
		pending: map[string]authz.RelationshipChange{}}
	for _, def := range compiled.ObjectDefinitions {
		mr.types = append(mr.types, def.GetName())
	}
	defer func() {
		if err != nil {
			mr.close()
		}
	}()
	boot, err := yaml.Marshal(map[string]string{"schema": schemaText})
	if err != nil {
		return nil, err
	}
	if _, _, err := validationfile.PopulateFromFilesContents(ctx, mr.dl, caveattypes.Default.TypeSet, map[string][]byte{"schema.yaml": boot}); err != nil {
		return nil, fmt.Errorf("write the mirror's schema: %w", err)
	}
	ds.seal()
	// SpiceDB's engine, called in-process: no gRPC server, no dispatch
	// cache (a read of the index costs less than a cache lookup would).
	if mr.perms, err = spembedded.NewPermissions(spembedded.Config{Datastore: ds, SchemaCacheMaxCostBytes: 32 << 20}); err != nil {
		return nil, fmt.Errorf("start the mirror's checker: %w", err)
	}
	return mr, nil
}

// write applies a mutation to the mirror's index, which holds its
// relationships (the memory datastore holds only the schema). Only the
// watcher writes, while no check reads the mirror (mu, or a mirror no check
// has yet).
func (m *mirror) write(u tuple.RelationshipUpdate) { m.idx.apply(u) }

// mutation is the mirror's form of one of the stream's changes (a create is a touch).
func mutation(u authz.RelationshipChange) tuple.RelationshipUpdate {
	op := tuple.UpdateOperationTouch
	if u.Operation == opDelete {
		op = tuple.UpdateOperationDelete
	}
	return tuple.RelationshipUpdate{Operation: op, Relationship: relationship(u.Tuple)}
}

// opDelete is a RelationshipChange's Operation for a delete.
const opDelete = "delete"

// relationship is the engine's form of t.
func relationship(t authz.Tuple) tuple.Relationship {
	subjectRel := t.SubjectRelation
	if subjectRel == "" {
		subjectRel = tuple.Ellipsis
	}
	r := tuple.Relationship{RelationshipReference: tuple.RelationshipReference{
		Resource: tuple.ObjectAndRelation{ObjectType: t.ResourceType, ObjectID: t.ResourceID, Relation: t.Relation},
		Subject:  tuple.ObjectAndRelation{ObjectType: t.SubjectType, ObjectID: t.SubjectID, Relation: subjectRel},
	}, OptionalExpiration: t.Expires}
	if t.Caveat != "" {
		r.OptionalCaveat = &core.ContextualizedCaveat{CaveatName: t.Caveat}
		if t.CaveatContext != nil {
			// A context SpiceDB sent as a Struct converts back without loss.
			r.OptionalCaveat.Context, _ = structpb.NewStruct(t.CaveatContext)
		}
	}
	return r
}

// copyFrom writes into the mirror every relationship up holds at exactly
// the revision at, telling each to seen (when not nil). It fails with
// errMirrorFull past the mirror's bound.
func (m *mirror) copyFrom(ctx context.Context, up Following, at string, seen func(authz.Tuple)) error {
	m.rels.Store(0)
	for _, typ := range m.types {
		err := up.Relationships(ctx, at, typ, "", func(t authz.Tuple) error {
			if seen != nil {
				seen(t)
			}
			if m.rels.Add(1) > m.max {
				return errMirrorFull
			}
			m.write(tuple.Touch(relationship(t)))
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// rebuilt returns a new mirror holding what m holds, for the watcher to put
// in m's place. Go maps do not shrink after deletes, and rels counts every
// touch as new, so a mirror that has applied many updates is copied into a
// fresh one, which holds only the present and counts it exactly.
// Only the watcher writes to m, and it is the caller: m does not change
// during the copy (read from m's index), and checks go on reading it meanwhile.
func (m *mirror) rebuilt(ctx context.Context) (*mirror, error) {
	ctx, cancel := context.WithTimeout(ctx, mirrorLoadTimeout)
	defer cancel()
	n, err := newMirror(ctx, m.schema, m.max, m.rebuildMin)
	if err != nil {
		return nil, err
	}
	n.setThrough(m.at())
	for _, set := range m.idx.sets {
		for _, rel := range set {
			n.write(tuple.Touch(rel))
		}
	}
	n.rels.Store(int64(n.idx.len()))
	if n.rels.Load() > n.max {
		n.close()
		return nil, errMirrorFull
	}
	return n, nil
}

// worn reports whether the mirror has applied enough updates since it was
// loaded that a rebuild (see rebuilt) frees more than it costs: half as many
// as it holds relationships, and at least rebuildMin (Options.MirrorRebuildMin).
func (m *mirror) worn() bool {
	return m.applied >= max(m.rels.Load()/2, m.rebuildMin)
}

// mirrorRebuildMin is the default of Options.MirrorRebuildMin.
const mirrorRebuildMin int64 = 20_000

// relKey names a relationship (without its caveat or expiry, which a later
// update replaces).
func relKey(t authz.Tuple) string {
	return t.ResourceType + "\x00" + t.ResourceID + "\x00" + t.Relation + "\x00" +
		t.SubjectType + "\x00" + t.SubjectID + "\x00" + t.SubjectRelation
}

// add buffers a revision's changes until the next checkpoint.
func (m *mirror) add(updates []authz.RelationshipChange) {
	for _, u := range updates {
		k := relKey(u.Tuple)
		if _, ok := m.pending[k]; !ok {
			m.order = append(m.order, k)
		}
		m.pending[k] = u
	}
}

// checkpoint applies the buffered updates, all at once as far as checks can
// see, and records through as the revision the mirror's state is at. It
// fails with errMirrorFull when the mirror would hold more than its bound.
func (m *mirror) checkpoint(through string) error {
	if len(m.order) == 0 {
		// Nothing changed since the last checkpoint: the state the mirror
		// holds is also the state at this one. Checks keep reading, instead
		// of queueing behind a write lock that would wait for the slowest walk
		// in flight (the stream sends a checkpoint every 100 ms when idle).
		m.setThrough(through)
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, k := range m.order {
		u := m.pending[k]
		if u.Operation == opDelete {
			m.rels.Add(-1)
		} else { // a touch may or may not create: counted as one (rebuilds count again exactly)
			m.rels.Add(1)
		}
		m.applied++
		m.write(mutation(u))
	}
	clear(m.pending)
	m.order = m.order[:0]
	m.setThrough(through)
	if m.rels.Load() > m.max {
		return errMirrorFull
	}
	return nil
}

// check answers one question on the mirror; the decision's revision is
// that of SpiceDB whose state the mirror holds.
func (m *mirror) check(ctx context.Context, q authz.Question) (authz.Decision, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return authz.Decision{}, errMirrorClosed
	}
	return m.checkLocked(ctx, q)
}

// errMirrorClosed fails a check on a mirror that closed after the check got it.
var errMirrorClosed = errors.New("the mirror closed")

func (m *mirror) checkLocked(ctx context.Context, q authz.Question) (authz.Decision, error) {
	var res spembedded.CheckResult
	var err error
	// The walk's CPU carries a profiler label (it and the goroutines the
	// engine starts), so a profile of authzd tells it from the rest.
	pprof.Do(ctx, pprof.Labels(ProfileLabel, ProfileLabelMirror), func(ctx context.Context) {
		res, err = m.perms.Check(ctx, spembedded.CheckRequest{
			ResourceType: q.ObjectType, ResourceID: q.ObjectID, Permission: q.Permission,
			SubjectType: q.SubjectType, SubjectID: q.SubjectID, SubjectRelation: q.SubjectRelation,
		})
	})
	if err != nil {
		return authz.Decision{}, fmt.Errorf("check on the mirror: %w", err)
	}
	// A conditional answer (a caveat without its context) is no, as SpiceDB's
	// CONDITIONAL_PERMISSION is on the check path.
	return authz.Decision{Allowed: res.HasPermission, CheckedAt: m.at(), Source: authz.SourceMirror}, nil
}

// at is the revision whose state the mirror holds.
func (m *mirror) at() string {
	if p := m.through.Load(); p != nil {
		return *p
	}
	return ""
}

func (m *mirror) setThrough(rev string) { m.through.Store(&rev) }

// checkBulk answers several questions on the mirror, in order, all on one state.
func (m *mirror) checkBulk(ctx context.Context, qs []authz.Question) ([]authz.Decision, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed {
		return nil, errMirrorClosed
	}
	out := make([]authz.Decision, len(qs))
	for i, q := range qs {
		d, err := m.checkLocked(ctx, q)
		if err != nil {
			return nil, err
		}
		out[i] = d
	}
	return out, nil
}

// retire stops the mirror's SpiceDB once the checks reading it have finished
// (the caller has made sure no new ones start).
func (m *mirror) retire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.close()
}

// close stops the mirror's checker and its datastore (retire for a mirror
// checks may be reading).
func (m *mirror) close() {
	m.closed = true
	if m.perms != nil {
		_ = m.perms.Close()
	}
	_ = m.ds.Close()
}
