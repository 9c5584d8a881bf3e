package spicedb

import (
	"slices"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/scailabs/authzd/internal/authz"
)

// One reader of the Watch stream for the decision cache and the out-of-band
// recorder: batchOf reads every change and write id (from either metadata
// field, once each), the resume marks included; withoutMarks then leaves the
// marks out for the recorder, and a batch of nothing but marks accounts for
// nothing.
func TestBatchOf(t *testing.T) {
	grant := touch(rel(typeTenant, "t1", authz.RoleTenantAdmin, subjectRef(user("alice"))))
	mark := touch(rel(typeTenant, barrierObject, authz.RoleTenantViewer, subjectRef(user(barrierObject+"/x"))))
	markID := authz.ResumeMarkPrefix + "abc"
	resp := &v1.WatchResponse{
		Updates:                     []*v1.RelationshipUpdate{grant, mark},
		IsCheckpoint:                true,
		OptionalTransactionMetadata: writeMetadata("w1/a"),
		FullRevisionMetadata:        []*structpb.Struct{writeMetadata("w1/a"), writeMetadata(markID), {}},
	}
	b, err := batchOf(resp)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(b.WriteIDs, []string{"w1/a", markID}) || !b.Untagged || !b.Checkpoint || len(b.Changes) != 2 {
		t.Fatalf("batch %+v: want write ids w1/a and the mark's, untagged, a checkpoint, two changes", b)
	}
	c := b.Changes[0]
	if c.Relationship != "tenant:t1#tenant_admin@user:alice" || c.TenantID != "t1" || c.Operation != "touch" ||
		c.SubjectType != typeUser || c.SubjectID != "alice" || c.Relation != authz.RoleTenantAdmin {
		t.Fatalf("change %+v", c)
	}
	r := withoutMarks(b)
	if !slices.Equal(r.WriteIDs, []string{"w1/a"}) || len(r.Changes) != 1 || !r.Untagged {
		t.Fatalf("without marks: %+v, want w1/a's change only", r)
	}
	only, err := batchOf(&v1.WatchResponse{Updates: []*v1.RelationshipUpdate{mark}, FullRevisionMetadata: []*structpb.Struct{writeMetadata(markID)}})
	if err != nil {
		t.Fatal(err)
	}
	if r := withoutMarks(only); len(r.Changes) != 0 || r.WriteIDs != nil || r.Untagged {
		t.Fatalf("a batch of marks only, without marks: %+v, want nothing to account for", r)
	}
	if len(only.WriteIDs) != 1 || len(only.Changes) != 1 {
		t.Fatalf("the cache's batch of a mark: %+v, want the mark and its id", only)
	}
}
