package spicedb

import (
	"context"
	"errors"
	"io"
	"slices"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/scailabs/authzd/internal/authz"
)

// snapshot turns a read's snapshot into SpiceDB's consistency.
func snapshot(at authz.Snapshot) *v1.Consistency {
	if at.Exact && at.Token != "" {
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: at.Token}}}
	}
	return consistency(at.Token)
}

// KeysOn lists the permission names (key relations) the schema defines on a
// resource type; for authz.ResourceTypeTenant, every tenant-level key.
func (g *Graph) KeysOn(resourceType string) []string {
	perms := g.model.tenant
	if resourceType != authz.ResourceTypeTenant {
		perms = g.model.resources[resourceType]
	}
	out := make([]string, 0, len(perms))
	for p := range perms {
		if authz.IsPlatformRole(p) {
			continue // helpers of the tenant definition, not keys
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// LookupSubjects answers which subjects of one kind hold a key on the tenant
// or on one of its resources (SpiceDB LookupSubjects, transitively through
// roles, partners and the platform).
func (g *Graph) LookupSubjects(ctx context.Context, q authz.SubjectSearch) (authz.SearchResult, error) {
	obj, perm, err := g.target(authz.Check{TenantID: q.TenantID, Key: q.Key, Resource: q.Resource})
	if err != nil {
		return authz.SearchResult{}, err
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	stream, err := g.perms.LookupSubjects(ctx, &v1.LookupSubjectsRequest{
		Consistency: snapshot(q.At), Resource: obj, Permission: perm, SubjectObjectType: q.SubjectKind,
	})
	if err != nil {
		return authz.SearchResult{}, mapLookupError(err, q.At)
	}
	return collect(stream, q.At, func(r *v1.LookupSubjectsResponse) (string, bool) {
		s := r.GetSubject()
		// No caveats or wildcards in the schema; anything else is not a plain yes.
		return s.GetSubjectObjectId(), s.GetPermissionship() == v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION &&
			s.GetSubjectObjectId() != "*"
	})
}

// LookupResources answers on which resources of a type the subject holds a
// key: tenant ids for authz.ResourceTypeTenant, otherwise the tenant-local ids
// of q.TenantID's resources.
func (g *Graph) LookupResources(ctx context.Context, q authz.ResourceSearch) (authz.SearchResult, error) {
	perm := q.Key.Relation()
	prefix := ""
	if q.ResourceType == authz.ResourceTypeTenant {
		if !g.model.tenant[perm] {
			return authz.SearchResult{}, authz.Errorf(authz.EINVALID, "unknown permission %q", q.Key)
		}
	} else {
		perms, ok := g.model.resources[q.ResourceType]
		if !ok {
			return authz.SearchResult{}, authz.UnknownResourceType(q.ResourceType, g.model.resourceTypeNames())
		}
		if !perms[perm] {
			return authz.SearchResult{}, authz.Errorf(authz.EINVALID, "permission %q does not apply to resource type %q", q.Key, q.ResourceType)
		}
		prefix = authz.TenantPrefix(q.TenantID)
	}
	ctx, cancel := g.call(ctx)
	defer cancel()
	stream, err := g.perms.LookupResources(ctx, &v1.LookupResourcesRequest{
		Consistency: snapshot(q.At), ResourceObjectType: q.ResourceType, Permission: perm, Subject: subjectRef(q.Subject),
	})
	if err != nil {
		return authz.SearchResult{}, mapLookupError(err, q.At)
	}
	return collect(stream, q.At, func(r *v1.LookupResourcesResponse) (string, bool) {
		if r.GetPermissionship() != v1.LookupPermissionship_LOOKUP_PERMISSIONSHIP_HAS_PERMISSION {
			return "", false
		}
		return strings.CutPrefix(r.GetResourceObjectId(), prefix) // false: another tenant's resource
	})
}

// lookedUp is a streamed lookup answer.
type lookedUp interface{ GetLookedUpAt() *v1.ZedToken }

// collect reads a lookup stream to its end: the ids pick keeps, sorted, each
// once (however SpiceDB streams them), and the revision of the answer.
func collect[R lookedUp](stream interface{ Recv() (R, error) }, at authz.Snapshot, pick func(R) (string, bool)) (authz.SearchResult, error) {
	var res authz.SearchResult
	for {
		r, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return authz.SearchResult{}, mapLookupError(err, at)
		}
		res.CheckedAt = r.GetLookedUpAt().GetToken()
		if id, ok := pick(r); ok {
			res.IDs = append(res.IDs, id)
		}
	}
	sort.Strings(res.IDs)
	res.IDs = slices.Compact(res.IDs)
	return res, nil
}

// mapLookupError recognises a malformed or expired zed token, the one caller
// input SpiceDB validates on the read path.
func mapLookupError(err error, at authz.Snapshot) error {
	if st, ok := statusOf(err); ok && at.Token != "" && (st == "InvalidArgument" || st == "FailedPrecondition") {
		return authz.Wrap(authz.EINVALID, err, "the consistency or page token is not a zed token this SpiceDB can read at")
	}
	return mapError(err, "lookup")
}
