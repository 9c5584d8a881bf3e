package spicedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	dsapi "github.com/authzed/spicedb/pkg/datastore"

	"github.com/scailabs/authzd/internal/authz"
)

// mirror is a copy of SpiceDB's relationships and schema held in a second,
// in-process SpiceDB on the memory datastore, and kept current by the same
// Watch stream as the decision cache. It answers the cache's misses: SpiceDB's
// own engine walks the graph, so no rule of the schema is evaluated twice, but
// every read of the walk is a memory read in this process instead of a query
// to the datastore behind the real SpiceDB (issue 12: a cold walk is 7-10
// datastore reads, and 41% of the benchmark's Zipf questions are first-time
// questions no cache can hold).
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
	e     *embedded
	ds    dsapi.Datastore // the memory datastore e serves
	idx   *relIndex       // its relationships by object and relation (mirrorindex.go)
	perms v1.PermissionsServiceClient

	// mu is held for reading by every check and for writing while a
	// checkpoint's updates are applied.
	mu sync.RWMutex
	// through is the checkpoint (or start barrier) whose state the mirror
	// holds: the revision its answers are reported at.
	through string

	schema string   // the schema text it was loaded with
	types  []string // the schema's object definitions

	max  int64        // relationships bound
	rels atomic.Int64 // relationships held: exact at a load, then counting every touch as new (over, never under)
	// applied counts the updates applied since the mirror was loaded.
	applied int64

	// pending are the updates delivered since the last checkpoint, the last
	// update of each relationship winning (the order within a revision and
	// between revisions is the stream's).
	pending map[string]*v1.RelationshipUpdate
	order   []string
}

// errMirrorFull reports a SpiceDB with more relationships than the mirror may hold.
var errMirrorFull = errors.New("spicedb holds more relationships than the mirror may hold")

// mirrorLoadTimeout bounds loading a mirror at a stream start.
const mirrorLoadTimeout = 5 * time.Minute

// mirrorChunk is how many relationships one write to the mirror carries
// (SpiceDB's default bound on updates per write is 1,000).
const mirrorChunk = 1000

// loadMirror copies SpiceDB's schema and every relationship at exactly the
// revision at (a barrier) into a new mirror. edges are the relationships that
// link two tenants (edgeOf), which the copy reads anyway. It fails with
// errMirrorFull when SpiceDB holds more than max relationships.
func (g *Graph) loadMirror(ctx context.Context, at string, max int) (_ *mirror, edges [][2]string, err error) {
	ctx, cancel := context.WithTimeout(ctx, mirrorLoadTimeout)
	defer cancel()
	sresp, err := g.schema.ReadSchema(ctx, &v1.ReadSchemaRequest{})
	if err != nil {
		return nil, nil, mapError(err, "read schema for the mirror")
	}
	mr, err := newMirror(ctx, sresp.GetSchemaText(), int64(max))
	if err != nil {
		return nil, nil, err
	}
	mr.through = at
	err = mr.copyFrom(ctx, g.perms, atBarrier(at), func(rel *v1.Relationship) {
		if e, ok := edgeOf(rel); ok {
			edges = append(edges, e)
		}
	})
	if err != nil {
		mr.close()
		return nil, nil, err
	}
	return mr, edges, nil
}

// newMirror starts an empty mirror with the schema text.
func newMirror(ctx context.Context, schemaText string, max int64) (_ *mirror, err error) {
	m, err := parseModel(schemaText)
	if err != nil {
		return nil, fmt.Errorf("parse spicedb's schema for the mirror: %w", err)
	}
	// Reads go to the head revision only, so the memory datastore need
	// not keep old revisions readable for long.
	ds, err := datastore.NewDatastore(ctx, datastore.WithEngine(datastore.MemoryEngine), datastore.WithGCWindow(time.Minute),
		datastore.WithRevisionQuantization(time.Second), datastore.WithEnableDatastoreMetrics(false))
	if err != nil {
		return nil, fmt.Errorf("start the mirror's datastore: %w", err)
	}
	idx := newRelIndex()
	e, err := startEmbedded(ctx, EmbeddedConfig{PresharedKey: randomKey(), Store: &indexedStore{Datastore: ds, idx: idx}})
	if err != nil {
		_ = ds.Close()
		return nil, err
	}
	mr := &mirror{e: e, ds: ds, idx: idx, perms: v1.NewPermissionsServiceClient(e.conn), schema: schemaText, max: max, pending: map[string]*v1.RelationshipUpdate{}}
	for _, def := range m.compiled.ObjectDefinitions {
		mr.types = append(mr.types, def.GetName())
	}
	if _, err := v1.NewSchemaServiceClient(e.conn).WriteSchema(ctx, &v1.WriteSchemaRequest{Schema: schemaText}); err != nil {
		mr.close()
		return nil, mapError(err, "write the mirror's schema")
	}
	return mr, nil
}

// copyFrom writes into the mirror every relationship src holds at cons,
// telling each to seen (when not nil). It fails with errMirrorFull past the
// mirror's bound.
func (m *mirror) copyFrom(ctx context.Context, src v1.PermissionsServiceClient, cons *v1.Consistency, seen func(*v1.Relationship)) error {
	batch := make([]*v1.RelationshipUpdate, 0, mirrorChunk)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := m.perms.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: batch})
		batch = batch[:0]
		return mapError(err, "load the mirror")
	}
	m.rels.Store(0)
	for _, typ := range m.types {
		stream, err := src.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: cons,
			RelationshipFilter: &v1.RelationshipFilter{ResourceType: typ}})
		if err != nil {
			return mapError(err, "read relationships for the mirror")
		}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return mapError(err, "read relationships for the mirror")
			}
			rel := resp.GetRelationship()
			if seen != nil {
				seen(rel)
			}
			if m.rels.Add(1) > m.max {
				return errMirrorFull
			}
			batch = append(batch, &v1.RelationshipUpdate{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: rel})
			m.idx.apply(v1.RelationshipUpdate_OPERATION_TOUCH, rel)
			if len(batch) == mirrorChunk {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// rebuilt returns a new mirror holding what m holds, for the watcher to put
// in m's place. SpiceDB's memory datastore keeps every revision it ever
// wrote (its snapshots and its change log), so a mirror that has applied
// many checkpoints is copied into a fresh one, which holds only the present.
// Only the watcher writes to m, and it is the caller: m does not change
// during the copy, and checks go on reading it meanwhile.
func (m *mirror) rebuilt(ctx context.Context) (*mirror, error) {
	ctx, cancel := context.WithTimeout(ctx, mirrorLoadTimeout)
	defer cancel()
	n, err := newMirror(ctx, m.schema, m.max)
	if err != nil {
		return nil, err
	}
	n.through = m.through
	if err := n.copyFrom(ctx, m.perms, head(), nil); err != nil {
		n.close()
		return nil, err
	}
	return n, nil
}

// worn reports whether the mirror has applied enough updates since it was
// loaded that a rebuild (see rebuilt) frees more than it costs: as many as
// it holds relationships, and at least mirrorRebuildMin.
func (m *mirror) worn() bool {
	return m.applied >= max(m.rels.Load(), mirrorRebuildMin)
}

// mirrorRebuildMin is the fewest applied updates that make a mirror worn (a
// variable so that a test can make rebuilds frequent).
var mirrorRebuildMin int64 = 100_000

// relKey names a relationship (without its caveat or expiry, which a later
// update replaces).
func relKey(r *v1.Relationship) string {
	o, s := r.GetResource(), r.GetSubject()
	return o.GetObjectType() + "\x00" + o.GetObjectId() + "\x00" + r.GetRelation() + "\x00" +
		s.GetObject().GetObjectType() + "\x00" + s.GetObject().GetObjectId() + "\x00" + s.GetOptionalRelation()
}

// add buffers a revision's updates until the next checkpoint.
func (m *mirror) add(updates []*v1.RelationshipUpdate) {
	for _, u := range updates {
		k := relKey(u.GetRelationship())
		if _, ok := m.pending[k]; !ok {
			m.order = append(m.order, k)
		}
		m.pending[k] = u
	}
}

// checkpoint applies the buffered updates, all at once as far as checks can
// see, and records through as the revision the mirror's state is at. It
// fails with errMirrorFull when the mirror would hold more than its bound.
func (m *mirror) checkpoint(ctx context.Context, through string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := make([]*v1.RelationshipUpdate, 0, min(len(m.order), mirrorChunk))
	for i, k := range m.order {
		u := m.pending[k]
		op := v1.RelationshipUpdate_OPERATION_TOUCH
		switch u.GetOperation() {
		case v1.RelationshipUpdate_OPERATION_DELETE:
			op = v1.RelationshipUpdate_OPERATION_DELETE
			m.rels.Add(-1)
		default: // a touch may or may not create: counted as one (rebuilds count again exactly)
			m.rels.Add(1)
		}
		m.applied++
		batch = append(batch, &v1.RelationshipUpdate{Operation: op, Relationship: u.GetRelationship()})
		m.idx.apply(op, u.GetRelationship())
		if len(batch) == mirrorChunk || i == len(m.order)-1 {
			wctx, cancel := context.WithTimeout(ctx, DefaultWriteTimeout)
			_, err := m.perms.WriteRelationships(wctx, &v1.WriteRelationshipsRequest{Updates: batch})
			cancel()
			if err != nil {
				return mapError(err, "apply changes to the mirror")
			}
			batch = batch[:0]
		}
	}
	clear(m.pending)
	m.order = m.order[:0]
	m.through = through
	if m.rels.Load() > m.max {
		return errMirrorFull
	}
	return nil
}

// check answers one question on the mirror; rev is the revision of SpiceDB
// whose state the mirror held.
func (m *mirror) check(ctx context.Context, it *v1.CheckBulkPermissionsRequestItem) (d authz.Decision, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	resp, err := m.perms.CheckPermission(ctx, &v1.CheckPermissionRequest{Consistency: head(),
		Resource: it.Resource, Permission: it.Permission, Subject: it.Subject})
	if err != nil {
		return authz.Decision{}, mapError(err, "check on the mirror")
	}
	return authz.Decision{
		Allowed:   resp.GetPermissionship() == v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION,
		CheckedAt: m.through, Source: authz.SourceMirror,
	}, nil
}

// checkBulk answers several questions on the mirror, in order.
func (m *mirror) checkBulk(ctx context.Context, items []*v1.CheckBulkPermissionsRequestItem) ([]authz.Decision, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	resp, err := m.perms.CheckBulkPermissions(ctx, &v1.CheckBulkPermissionsRequest{Consistency: head(), Items: items})
	if err != nil {
		return nil, mapError(err, "check on the mirror")
	}
	ds, err := bulkDecisions(resp, items)
	if err != nil {
		return nil, err
	}
	for i := range ds {
		ds[i].CheckedAt, ds[i].Source = m.through, authz.SourceMirror
	}
	return ds, nil
}

// retire stops the mirror's SpiceDB once the checks reading it have finished
// (the caller has made sure no new ones start).
func (m *mirror) retire() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.close()
}

// close stops the mirror's SpiceDB and its datastore.
func (m *mirror) close() {
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	_ = m.e.close(ctx)
	_ = m.ds.Close()
}
