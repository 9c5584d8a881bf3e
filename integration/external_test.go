package integration

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/authzed-go/v1"
	"github.com/authzed/grpcutil"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/scailabs/authzd/cmd/authzd/app"
)

// TestExternalChanges: relationship changes made straight in SpiceDB (as with zed) become audit rows
// (module authzd, action relationship.external), authzd's own writes do not, a change forged to look
// like authzd's is caught, and a second replica takes over recording from the stored cursor when the
// first one stops, so a change made while no replica watched is still recorded, exactly once.
func TestExternalChanges(t *testing.T) {
	w := mustWorld(t)
	srv := w.startSpiceDB(t)
	fast := withConfig(func(c *app.Config) { c.ExternalChangesGrace = 500 * time.Millisecond })
	a := startApp(t, withExternalSpiceDB(srv), fast)
	// A second replica on the same audit database and SpiceDB; only one records at a time.
	b := startApp(t, withExternalSpiceDB(srv), fast, withConfig(func(c *app.Config) { c.DatabaseURL = a.AuditURL }))

	a.mustPartner(t, "p1")
	a.mustTenant(t, "acme", "p1")
	a.mustRole(t, "acme", "ops", "scaibunker:create")
	a.mustMember(t, "acme", "ops", "alice")
	b.mustMember(t, "acme", "ops", "bob")

	sp, err := authzed.NewClient(srv.Endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpcutil.WithInsecureBearerToken(srv.Token))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	direct := func(rel string, md *structpb.Struct) {
		t.Helper()
		parts := strings.FieldsFunc(rel, func(r rune) bool { return r == ':' || r == '#' || r == '@' })
		_, err := sp.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{
			Updates: []*v1.RelationshipUpdate{{Operation: v1.RelationshipUpdate_OPERATION_TOUCH, Relationship: &v1.Relationship{
				Resource: &v1.ObjectReference{ObjectType: parts[0], ObjectId: parts[1]}, Relation: parts[2],
				Subject: &v1.SubjectReference{Object: &v1.ObjectReference{ObjectType: parts[3], ObjectId: parts[4]}},
			}}},
			OptionalTransactionMetadata: md,
		})
		if err != nil {
			t.Fatalf("write %s straight to SpiceDB: %v", rel, err)
		}
	}

	zed := "role:acme/ops#member@user:mallory"
	direct(zed, nil)
	forged := "platform:scaigrid#super_admin@user:eve"
	forgedID := uuid.NewString() + "/x"
	direct(forged, &structpb.Struct{Fields: map[string]*structpb.Value{"authzd_write_id": structpb.NewStringValue(forgedID)}})
	want := map[string]func(auditEvent) error{
		zed: func(e auditEvent) error {
			if e.TenantID != "acme" || e.ResourceType != "role" || e.ResourceID != "acme/ops" || e.Permission != "member" {
				return fmt.Errorf("tenant/resource/permission %s %s:%s %s", e.TenantID, e.ResourceType, e.ResourceID, e.Permission)
			}
			if e.Details["claimed_write_ids"] != nil {
				return fmt.Errorf("an untagged change reported claimed ids %v", e.Details["claimed_write_ids"])
			}
			return nil
		},
		forged: func(e auditEvent) error {
			ids, _ := e.Details["claimed_write_ids"].([]any)
			if len(ids) != 1 || ids[0] != forgedID {
				return fmt.Errorf("claimed_write_ids %v, want [%s]", e.Details["claimed_write_ids"], forgedID)
			}
			return nil
		},
	}
	mustExternalRows(t, a, want)

	// The recording replica stops; a change made now is recorded by the other, from the stored cursor.
	leader, other := a, b
	if !a.Main.RecordsExternalChanges() {
		leader, other = b, a
	}
	if !leader.Main.RecordsExternalChanges() {
		t.Fatal("neither replica records external changes")
	}
	closeCtx, closeCancel := context.WithTimeout(ctx, 30*time.Second)
	if err := leader.Main.Close(closeCtx); err != nil {
		t.Fatalf("close the recording replica: %v", err)
	}
	closeCancel()
	late := "tenant:acme#tenant_admin@user:trudy"
	direct(late, nil)
	want[late] = func(e auditEvent) error {
		if e.TenantID != "acme" || e.Permission != "tenant_admin" {
			return fmt.Errorf("tenant %s permission %s", e.TenantID, e.Permission)
		}
		return nil
	}
	mustExternalRows(t, other, want)
	// Both replicas, decisions and external-change rows alike, wrote one hash chain.
	mustVerifyChain(t, a.Audit) // b writes to a's database
}

// mustExternalRows waits until GET /v1/audit/events lists exactly one relationship.external row per
// wanted relationship, each passing its check, and no other.
func mustExternalRows(t *testing.T, a *testApp, want map[string]func(auditEvent) error) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		events := walkAudit(t, a.api, url.Values{"module": {"authzd"}}, 100)
		got := map[string][]auditEvent{}
		var problems []string
		for _, e := range events {
			if e.Action != "relationship.external" {
				continue
			}
			rel, _ := e.Details["relationship"].(string)
			got[rel] = append(got[rel], e)
			if _, ok := want[rel]; !ok {
				problems = append(problems, fmt.Sprintf("unexpected external row for %q (authzd's own write?): %+v", rel, e))
			}
		}
		for rel, check := range want {
			switch rows := got[rel]; {
			case len(rows) == 0:
				problems = append(problems, fmt.Sprintf("no external row for %s", rel))
			case len(rows) > 1:
				problems = append(problems, fmt.Sprintf("%d external rows for %s", len(rows), rel))
			default:
				if err := check(rows[0]); err != nil {
					problems = append(problems, fmt.Sprintf("row for %s: %v", rel, err))
				}
				if rows[0].Client != "authzd-watch" || rows[0].ZedToken == "" || rows[0].Details["operation"] != "touch" {
					problems = append(problems, fmt.Sprintf("row for %s lacks client/revision/operation: %+v", rel, rows[0]))
				}
			}
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("external-change rows after 45s:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
