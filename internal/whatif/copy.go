package whatif

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	caveattypes "github.com/authzed/spicedb/pkg/caveats/types"
	"github.com/authzed/spicedb/pkg/cmd/datastore"
	"github.com/authzed/spicedb/pkg/datalayer"
	sdatastore "github.com/authzed/spicedb/pkg/datastore"
	spembedded "github.com/authzed/spicedb/pkg/embedded"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/authzed/spicedb/pkg/validationfile"
	"gopkg.in/yaml.v3"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/internal/spicedb"
)

// replica is the what-if's private copy of a tenant's closure: SpiceDB's
// engine (pkg/embedded) on SpiceDB's memory datastore, which holds the
// schema, with every read of relationships served from the store. No rule
// of the schema is evaluated by this package.
type replica struct {
	s     *store
	ds    *storeDS
	perms *spembedded.Permissions
}

// newReplica starts an empty copy with the schema text, written the way
// SpiceDB loads its bootstrap files.
func newReplica(ctx context.Context, schemaText string) (_ *replica, err error) {
	mem, err := datastore.NewDatastore(ctx, datastore.WithEngine(datastore.MemoryEngine), datastore.WithGCWindow(time.Minute),
		datastore.WithRevisionQuantization(time.Second), datastore.WithEnableDatastoreMetrics(false))
	if err != nil {
		return nil, fmt.Errorf("start the what-if's datastore: %w", err)
	}
	r := &replica{s: newStore()}
	r.ds = &storeDS{Datastore: mem, s: r.s}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	boot, err := yaml.Marshal(map[string]string{"schema": schemaText})
	if err != nil {
		return nil, err
	}
	if _, _, err := validationfile.PopulateFromFilesContents(ctx, datalayer.NewDataLayer(mem), caveattypes.Default.TypeSet,
		map[string][]byte{"schema.yaml": boot}); err != nil {
		return nil, fmt.Errorf("write the what-if's schema: %w", err)
	}
	r.ds.seal()
	if r.perms, err = spembedded.NewPermissions(spembedded.Config{Datastore: r.ds, SchemaCacheMaxCostBytes: 32 << 20}); err != nil {
		return nil, fmt.Errorf("start the what-if's checker: %w", err)
	}
	return r, nil
}

func (r *replica) close() {
	if r.perms != nil {
		_ = r.perms.Close()
	}
	_ = r.ds.Close()
}

// load copies, at the snapshot's revision, the relationships of the
// platform and of every partner, every tenant's partner, and every object
// of the tenant and of each tenant one of its objects names as a subject
// (a cross-tenant edge), and so on from those.
func (r *replica) load(ctx context.Context, snap *spicedb.Snapshot, tenantID string, scopedTypes []string) error {
	for _, f := range []*v1.RelationshipFilter{
		{ResourceType: typePlatform}, {ResourceType: typePartner}, {ResourceType: typeTenant, OptionalRelation: relPartner},
	} {
		if err := r.copy(ctx, snap, f, nil); err != nil {
			return err
		}
	}
	queue := []string{tenantID}
	r.s.tenants[tenantID] = true
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		reach := func(rel *v1.Relationship) {
			so := rel.GetSubject().GetObject()
			if st := tenantOf(so.GetObjectType(), so.GetObjectId()); st != "" && !r.s.tenants[st] {
				r.s.tenants[st] = true
				queue = append(queue, st)
			}
		}
		if err := r.copy(ctx, snap, &v1.RelationshipFilter{ResourceType: typeTenant, OptionalResourceId: t}, reach); err != nil {
			return err
		}
		for _, typ := range scopedTypes {
			if typ == typeTenant {
				continue
			}
			if err := r.copy(ctx, snap, &v1.RelationshipFilter{ResourceType: typ, OptionalResourceIdPrefix: t + "/"}, reach); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *replica) copy(ctx context.Context, snap *spicedb.Snapshot, f *v1.RelationshipFilter, seen func(*v1.Relationship)) error {
	rels, err := snap.Read(ctx, f)
	if err != nil {
		return err
	}
	for _, rel := range rels {
		if seen != nil {
			seen(rel)
		}
		r.s.touch(tuple.FromV1Relationship(rel))
	}
	return nil
}

// Read serves a plan's reads (spicedb.Reader) from the copy.
func (r *replica) Read(_ context.Context, f *v1.RelationshipFilter, limit uint32) ([]*v1.Relationship, error) {
	rels, err := r.match(f)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(rels) > int(limit) {
		rels = rels[:limit]
	}
	out := make([]*v1.Relationship, len(rels))
	for i, rel := range rels {
		out[i] = tuple.ToV1Relationship(rel)
	}
	return out, nil
}

func (r *replica) match(f *v1.RelationshipFilter) ([]tuple.Relationship, error) {
	df, err := sdatastore.RelationshipsFilterFromPublicFilter(f)
	if err != nil {
		return nil, fmt.Errorf("a plan's filter: %w", err)
	}
	return r.s.query(df)
}

// errPrecondition is a step's failed precondition that names no error of its own.
var errPrecondition = authz.Errorf(authz.ECONFLICT, "a precondition of the write failed")

// apply executes a plan's step on the copy, as SpiceDB would: nothing
// unless every precondition holds (then its Failed error), then the
// deletion or the updates. The copy has no revisions: the token is empty.
func (r *replica) apply(_ context.Context, st spicedb.Step) (string, error) {
	for _, p := range st.Pre {
		found, err := r.match(p.GetFilter())
		if err != nil {
			return "", err
		}
		want := p.GetOperation() == v1.Precondition_OPERATION_MUST_MATCH
		if (len(found) > 0) != want {
			if st.Failed != nil {
				return "", st.Failed
			}
			return "", errPrecondition
		}
	}
	if st.Delete != nil {
		found, err := r.match(st.Delete)
		if err != nil {
			return "", err
		}
		for _, rel := range found {
			r.s.remove(rel)
		}
		return "", nil
	}
	// Every update's object must be one the copy holds whole, else the
	// write would change what the copy cannot see.
	for _, u := range st.Updates {
		rel := tuple.FromV1Relationship(u.GetRelationship())
		f := sdatastore.RelationshipsFilter{OptionalResourceType: rel.Resource.ObjectType,
			OptionalResourceIds: []string{rel.Resource.ObjectID}, OptionalResourceRelation: rel.Resource.Relation}
		if !r.s.covered(f) {
			return "", fmt.Errorf("%w: %s", ErrIncomplete, describe(f))
		}
	}
	for _, u := range st.Updates {
		rel := tuple.FromV1Relationship(u.GetRelationship())
		if u.GetOperation() == v1.RelationshipUpdate_OPERATION_DELETE {
			r.s.remove(rel)
		} else {
			r.s.touch(rel)
		}
	}
	return "", nil
}

// check answers one question on the copy with SpiceDB's engine.
func (r *replica) check(ctx context.Context, q target) (bool, error) {
	res, err := r.perms.Check(ctx, spembedded.CheckRequest{ResourceType: q.typ, ResourceID: q.id, Permission: q.perm,
		SubjectType: q.subject.Kind, SubjectID: q.subject.ID})
	if err != nil {
		if errors.Is(err, ErrIncomplete) {
			return false, err
		}
		return false, fmt.Errorf("check on the what-if's copy: %w", err)
	}
	// A conditional answer (a caveat without its context) is no, as on the check path.
	return res.HasPermission, nil
}
