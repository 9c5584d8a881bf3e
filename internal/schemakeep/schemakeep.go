// Package schemakeep keeps the schema definitions of an in-process SpiceDB
// memory datastore decoded once the schema is written. The datastore decodes
// a definition on every read, and a check reads the tenant's definition, over
// a hundred relations, at every step of its walk: most of an in-process
// check's CPU when measured. Used where the schema of a datastore never
// changes once written (the decision cache's mirror, the what-if's copy).
package schemakeep

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/authzed/spicedb/pkg/datastore"
	core "github.com/authzed/spicedb/pkg/proto/core/v1"
)

// Keeper holds the definitions read since Seal.
type Keeper struct {
	sealed     atomic.Bool
	mu         sync.RWMutex
	namespaces map[string]datastore.RevisionedNamespace
	caveats    map[string]datastore.RevisionedCaveat
}

// Seal marks the schema as written: definitions read from now on are kept.
func (k *Keeper) Seal() {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.namespaces, k.caveats = map[string]datastore.RevisionedNamespace{}, map[string]datastore.RevisionedCaveat{}
	k.sealed.Store(true)
}

// Reader returns r with its schema reads served by k.
func (k *Keeper) Reader(r datastore.Reader) Reader { return Reader{Reader: r, k: k} }

// Reader is a datastore reader whose schema reads go through a Keeper.
type Reader struct {
	datastore.Reader
	k *Keeper
}

func (r Reader) LegacyReadNamespaceByName(ctx context.Context, name string) (*core.NamespaceDefinition, datastore.Revision, error) {
	return read(ctx, r.k, r.k.namespaces, name, r.Reader.LegacyReadNamespaceByName)
}

func (r Reader) LegacyReadCaveatByName(ctx context.Context, name string) (*core.CaveatDefinition, datastore.Revision, error) {
	return read(ctx, r.k, r.k.caveats, name, r.Reader.LegacyReadCaveatByName)
}

func (r Reader) LegacyLookupNamespacesWithNames(ctx context.Context, names []string) ([]datastore.RevisionedNamespace, error) {
	if !r.k.sealed.Load() {
		return r.Reader.LegacyLookupNamespacesWithNames(ctx, names)
	}
	out := make([]datastore.RevisionedNamespace, 0, len(names))
	for _, name := range names {
		def, rev, err := r.LegacyReadNamespaceByName(ctx, name)
		if err != nil {
			var nf datastore.NamespaceNotFoundError
			if errors.As(err, &nf) {
				continue // a lookup leaves out the names it does not find
			}
			return nil, err
		}
		out = append(out, datastore.RevisionedNamespace{Definition: def, LastWrittenRevision: rev})
	}
	return out, nil
}

// read reads a definition from kept (filled on first read once sealed), or
// from the datastore before then.
func read[T datastore.SchemaDefinition](ctx context.Context, k *Keeper, kept map[string]datastore.RevisionedDefinition[T], name string,
	from func(context.Context, string) (T, datastore.Revision, error),
) (T, datastore.Revision, error) {
	if !k.sealed.Load() {
		return from(ctx, name)
	}
	k.mu.RLock()
	d, ok := kept[name]
	k.mu.RUnlock()
	if ok {
		return d.Definition, d.LastWrittenRevision, nil
	}
	def, rev, err := from(ctx, name)
	if err == nil {
		k.mu.Lock()
		kept[name] = datastore.RevisionedDefinition[T]{Definition: def, LastWrittenRevision: rev}
		k.mu.Unlock()
	}
	return def, rev, err
}
