package cache

import (
	"context"
	"time"

	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/input"

	"github.com/scailabs/authzd/internal/authz"
)

// Edges between tenants (decisionCache.dependents): authzd's API never
// writes a relationship on one tenant's object whose subject is another
// tenant's object, but a write made straight to SpiceDB can, and then a
// change to the subject's tenant must drop the resource's tenant as well.

// edgeScanTimeout bounds the scan for cross-tenant edges at the first stream
// start (every tenant-scoped relationship whose subject is a tenant-scoped
// object: grants to roles, resources' and roles' tenants).
const edgeScanTimeout = 2 * time.Minute

// edgeOf reports whether t links two tenants: its subject is an object of
// another tenant than its resource's ("" for a platform or partner
// resource). The edge is {subject's tenant, resource's tenant}: the second
// depends on the first (decisionCache.dependents).
func edgeOf(t authz.Tuple) ([2]string, bool) {
	rt, st := authz.TenantOf(t.ResourceType, t.ResourceID), authz.TenantOf(t.SubjectType, t.SubjectID)
	return [2]string{st, rt}, st != "" && st != rt
}

// changeOf reads what a batch of the stream means for the cache.
func changeOf(b authz.ChangeBatch) change {
	ch := change{global: b.SchemaChanged, checkpoint: b.Checkpoint, writeIDs: b.WriteIDs}
	seen := map[string]bool{}
	for _, u := range b.Changes {
		if e, ok := edgeOf(u.Tuple); ok && u.Operation != "delete" {
			ch.links = append(ch.links, e) // a delete keeps the edge known (see decisionCache.dependents)
		}
		t := u.TenantID
		if t == "" {
			ch.global = true
			continue
		}
		if !seen[t] {
			seen[t] = true
			ch.tenants = append(ch.tenants, t)
		}
	}
	return ch
}

// scopedTypes are the object types of schema whose objects belong to one
// tenant: every definition but users, service accounts, the platform and
// partners.
func scopedTypes(schema string) ([]string, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{Source: input.Source("schema"), SchemaString: schema}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, def := range compiled.ObjectDefinitions {
		if !authz.Unscoped(def.GetName()) {
			out = append(out, def.GetName())
		}
	}
	return out, nil
}

// crossTenantEdges lists, at the revision at, every relationship on one
// tenant's object whose subject is another tenant's object, as {subject's
// tenant, resource's tenant}. Relationships whose subject is a user, a
// service account, the platform or a partner are not read (a subject filter
// per pair of tenant-scoped types).
func crossTenantEdges(ctx context.Context, up Following, at string) ([][2]string, error) {
	ctx, cancel := context.WithTimeout(ctx, edgeScanTimeout)
	defer cancel()
	schema, err := up.Schema(ctx)
	if err != nil {
		return nil, err
	}
	types, err := scopedTypes(schema)
	if err != nil {
		return nil, authz.Wrap(authz.EINTERNAL, err, "compile spicedb's schema")
	}
	var out [][2]string
	for _, r := range types {
		for _, s := range types {
			err := up.Relationships(ctx, at, r, s, func(t authz.Tuple) error {
				if e, ok := edgeOf(t); ok {
					out = append(out, e)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// link records edges between tenants found outside the stream ({from, to}:
// to depends on from).
func (c *decisionCache) link(edges [][2]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range edges {
		c.linkLocked(e[0], e[1])
	}
}

// linkLocked records that tenant to depends on tenant from. An empty to is
// an object outside every tenant (which every tenant may depend on): from's
// changes then reach every tenant.
func (c *decisionCache) linkLocked(from, to string) {
	if c.allDepend || c.dependents[from][to] {
		return
	}
	if to == "" || c.nDepend >= maxDependents {
		c.allDepend = true
		return
	}
	if c.dependents[from] == nil {
		c.dependents[from] = map[string]bool{}
	}
	c.dependents[from][to] = true
	c.nDepend++
}

// withDependentsLocked returns tenants and every tenant that depends on one
// of them, directly or through others.
func (c *decisionCache) withDependentsLocked(tenants []string) []string {
	if len(c.dependents) == 0 {
		return tenants
	}
	seen := make(map[string]bool, len(tenants))
	out := make([]string, 0, len(tenants))
	queue := append([]string(nil), tenants...)
	for len(queue) > 0 {
		t := queue[0]
		queue = queue[1:]
		if seen[t] {
			continue
		}
		seen[t] = true
		out = append(out, t)
		for d := range c.dependents[t] {
			queue = append(queue, d)
		}
	}
	return out
}
