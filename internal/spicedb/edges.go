package spicedb

import (
	"context"
	"errors"
	"io"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// edgeScanTimeout bounds the scan for cross-tenant edges at the first stream
// start (every tenant-scoped relationship whose subject is a tenant-scoped
// object: grants to roles, resources' and roles' tenants).
const edgeScanTimeout = 2 * time.Minute

// scopedTypes are the object types whose objects belong to one tenant (see
// tenantOf): every definition but users, service accounts, the platform and
// partners.
func (m *model) scopedTypes() []string {
	var out []string
	for _, def := range m.compiled.ObjectDefinitions {
		switch def.GetName() {
		case typeUser, typeServiceAccount, typePlatform, typePartner:
		default:
			out = append(out, def.GetName())
		}
	}
	return out
}

// edgeOf reports whether rel links two tenants: its subject is an object of
// another tenant than its resource's ("" for a platform or partner
// resource). The edge is {subject's tenant, resource's tenant}: the second
// depends on the first (decisionCache.dependents).
func edgeOf(rel *v1.Relationship) ([2]string, bool) {
	o, so := rel.GetResource(), rel.GetSubject().GetObject()
	t, st := tenantOf(o.GetObjectType(), o.GetObjectId()), tenantOf(so.GetObjectType(), so.GetObjectId())
	return [2]string{st, t}, st != "" && st != t
}

// crossTenantEdges lists, at the revision at, every relationship on one
// tenant's object whose subject is another tenant's object, as {subject's
// tenant, resource's tenant}. authzd's API never writes one; a write made
// straight to SpiceDB can, and the decision cache must then know that the
// resource's tenant depends on the subject's (decisionCache.dependents).
// Relationships whose subject is a user, a service account, the platform or
// a partner are not read (a subject filter per pair of tenant-scoped types).
func (g *Graph) crossTenantEdges(ctx context.Context, at string) ([][2]string, error) {
	ctx, cancel := context.WithTimeout(ctx, edgeScanTimeout)
	defer cancel()
	types := g.model.scopedTypes()
	var out [][2]string
	for _, r := range types {
		for _, s := range types {
			stream, err := g.perms.ReadRelationships(ctx, &v1.ReadRelationshipsRequest{Consistency: atBarrier(at),
				RelationshipFilter: &v1.RelationshipFilter{ResourceType: r, OptionalSubjectFilter: &v1.SubjectFilter{SubjectType: s}}})
			if err != nil {
				return nil, mapError(err, "read cross-tenant relationships")
			}
			for {
				resp, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, mapError(err, "read cross-tenant relationships")
				}
				if e, ok := edgeOf(resp.GetRelationship()); ok {
					out = append(out, e)
				}
			}
		}
	}
	return out, nil
}
