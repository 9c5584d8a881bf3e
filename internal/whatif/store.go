package whatif

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authzed/spicedb/pkg/datastore"
	"github.com/authzed/spicedb/pkg/datastore/options"
	"github.com/authzed/spicedb/pkg/tuple"
	"github.com/scailabs/authzd/internal/schemakeep"
)

// ErrIncomplete fails a what-if whose walk or write read an object the copy
// does not hold: the answer would be a guess, so there is none.
var ErrIncomplete = errors.New("the what-if's copy does not hold an object it read")

// Object types whose relationships the copy holds whole (every object of
// the type), and the subject types, which are the objects of no tenant.
const (
	typePlatform       = "platform"
	typePartner        = "partner"
	typeTenant         = "tenant"
	typeUser           = "user"
	typeServiceAccount = "service_account"
	relPartner         = "partner"
)

// tenantOf is the tenant an object belongs to: the tenant itself, or the
// tenant its id is prefixed with ("t/x"); "" for the platform, partners and
// subjects.
func tenantOf(typ, id string) string {
	switch typ {
	case typeTenant:
		return id
	case typePlatform, typePartner, typeUser, typeServiceAccount:
		return ""
	}
	if i := strings.IndexByte(id, '/'); i > 0 {
		return id[:i]
	}
	return ""
}

// store holds the copy's relationships by type, object id and relation,
// and knows which objects it holds whole: the platform's and partners',
// every tenant's partner, and every object of the tenants in the closure.
// It is written only between the what-if's phases, while nothing reads it.
type store struct {
	objs    map[string]map[string]map[string]map[string]tuple.Relationship // type -> id -> relation -> subject -> relationship
	tenants map[string]bool                                                // the tenants whose objects it holds whole
}

func newStore() *store {
	return &store{objs: map[string]map[string]map[string]map[string]tuple.Relationship{}, tenants: map[string]bool{}}
}

func subjectKey(s tuple.ObjectAndRelation) string {
	return s.ObjectType + "\x00" + s.ObjectID + "\x00" + s.Relation
}

// touch adds or replaces a relationship.
func (s *store) touch(r tuple.Relationship) {
	o := r.Resource
	ids := s.objs[o.ObjectType]
	if ids == nil {
		ids = map[string]map[string]map[string]tuple.Relationship{}
		s.objs[o.ObjectType] = ids
	}
	rels := ids[o.ObjectID]
	if rels == nil {
		rels = map[string]map[string]tuple.Relationship{}
		ids[o.ObjectID] = rels
	}
	set := rels[o.Relation]
	if set == nil {
		set = map[string]tuple.Relationship{}
		rels[o.Relation] = set
	}
	set[subjectKey(r.Subject)] = r
}

// remove deletes a relationship, if held.
func (s *store) remove(r tuple.Relationship) {
	o := r.Resource
	rels := s.objs[o.ObjectType][o.ObjectID]
	set := rels[o.Relation]
	delete(set, subjectKey(r.Subject))
	if len(set) == 0 {
		delete(rels, o.Relation)
	}
	if len(rels) == 0 {
		delete(s.objs[o.ObjectType], o.ObjectID)
	}
}

// covered reports whether the store holds every relationship f can match.
func (s *store) covered(f datastore.RelationshipsFilter) bool {
	switch f.OptionalResourceType {
	case typePlatform, typePartner:
		return true
	case typeUser, typeServiceAccount:
		return true // never a resource: there is nothing to hold
	case "":
		return false
	}
	if f.OptionalResourceType == typeTenant && f.OptionalResourceRelation == relPartner {
		return true
	}
	switch {
	case len(f.OptionalResourceIds) > 0:
		for _, id := range f.OptionalResourceIds {
			if !s.tenants[tenantOf(f.OptionalResourceType, id)] {
				return false
			}
		}
		return true
	case f.OptionalResourceIDPrefix != "":
		t, _, ok := strings.Cut(f.OptionalResourceIDPrefix, "/")
		return ok && s.tenants[t]
	}
	return false
}

// query returns every held relationship f matches; a filter the store does
// not hold whole fails with ErrIncomplete.
func (s *store) query(f datastore.RelationshipsFilter) ([]tuple.Relationship, error) {
	if !s.covered(f) {
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, describe(f))
	}
	ids := s.objs[f.OptionalResourceType]
	var out []tuple.Relationship
	visit := func(rels map[string]map[string]tuple.Relationship) {
		for rel, set := range rels {
			if f.OptionalResourceRelation != "" && rel != f.OptionalResourceRelation {
				continue
			}
			for _, r := range set {
				if f.Test(r) {
					out = append(out, r)
				}
			}
		}
	}
	if len(f.OptionalResourceIds) > 0 {
		for i, id := range f.OptionalResourceIds {
			if !slices.Contains(f.OptionalResourceIds[:i], id) {
				visit(ids[id])
			}
		}
		return out, nil
	}
	for id, rels := range ids {
		if strings.HasPrefix(id, f.OptionalResourceIDPrefix) {
			visit(rels)
		}
	}
	return out, nil
}

func describe(f datastore.RelationshipsFilter) string {
	switch {
	case len(f.OptionalResourceIds) > 0:
		return f.OptionalResourceType + ":" + strings.Join(f.OptionalResourceIds, ",") + "#" + f.OptionalResourceRelation
	case f.OptionalResourceIDPrefix != "":
		return f.OptionalResourceType + ":" + f.OptionalResourceIDPrefix + "*#" + f.OptionalResourceRelation
	}
	return f.OptionalResourceType + ":*#" + f.OptionalResourceRelation
}

// storeDS is SpiceDB's memory datastore, which holds the schema only, with
// every read of relationships served from the store, and the schema's
// definitions, once written (sealed), kept decoded: the datastore decodes a
// definition on every read, and a check reads the tenant's, over a hundred
// relations, at every step of its walk (most of a what-if's CPU when measured).
type storeDS struct {
	datastore.Datastore
	s      *store
	schema schemakeep.Keeper
}

func (d *storeDS) SnapshotReader(rev datastore.Revision) datastore.Reader {
	return storeReader{Reader: d.schema.Reader(d.Datastore.SnapshotReader(rev)), s: d.s}
}

// seal marks the schema as written: definitions read from now on are kept.
func (d *storeDS) seal() { d.schema.Seal() }

type storeReader struct {
	schemakeep.Reader
	s *store
}

func (r storeReader) QueryRelationships(_ context.Context, f datastore.RelationshipsFilter, opts ...options.QueryOptionsOption) (datastore.RelationshipIterator, error) {
	qo := options.NewQueryOptionsWithOptions(opts...)
	if !qo.ReturnsAllUnordered() {
		return nil, fmt.Errorf("%w: a limited or ordered read", ErrIncomplete)
	}
	rels, err := r.s.query(f)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return func(yield func(tuple.Relationship, error) bool) {
		for _, rel := range rels {
			// As the memory datastore reads: a caveated relationship is left
			// out when caveats are skipped, an expired one unless expiration is.
			if qo.SkipCaveats && rel.OptionalCaveat != nil {
				continue
			}
			if !qo.SkipExpiration && rel.OptionalExpiration != nil && rel.OptionalExpiration.Before(now) {
				continue
			}
			if !yield(rel, nil) {
				return
			}
		}
	}, nil
}

// ReverseQueryRelationships is refused: the store is by resource, and may
// not hold every relationship of a subject.
func (r storeReader) ReverseQueryRelationships(context.Context, datastore.SubjectsFilter, ...options.ReverseQueryOptionsOption) (datastore.RelationshipIterator, error) {
	return nil, fmt.Errorf("%w: a read by subject", ErrIncomplete)
}

// CountRelationships is refused, as a read the store cannot serve.
func (r storeReader) CountRelationships(context.Context, string) (int, error) {
	return 0, fmt.Errorf("%w: a count", ErrIncomplete)
}

// LookupCounters is refused, as CountRelationships.
func (r storeReader) LookupCounters(context.Context) ([]datastore.RelationshipCounter, error) {
	return nil, fmt.Errorf("%w: a count", ErrIncomplete)
}
