package schema_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/authzed/spicedb/pkg/development"
	devinterface "github.com/authzed/spicedb/pkg/proto/developer/v1"
	"github.com/authzed/spicedb/pkg/validationfile"
	"github.com/authzed/spicedb/pkg/validationfile/blocks"

	"github.com/scailabs/authzd/internal/authz"
	"github.com/scailabs/authzd/schema"
)

const validationFile = "validation.yaml"

// The default-role matrix of validation.yaml is asserted on matrixTenant, with one subject per
// built-in role. This table is written by hand, like the assertions it describes.
const matrixTenant = "acme"

var matrixSubjects = map[string]string{
	"user:root":            schema.RoleSuperAdmin,
	"user:northwind_admin": schema.RolePartnerAdmin,
	"user:acme_admin":      schema.RoleTenantAdmin,
	"user:acme_user":       schema.RoleTenantUser,
	"user:acme_viewer":     schema.RoleTenantViewer,
}

func TestValidation(t *testing.T) {
	m := MustEmbedded(t)
	dc := MustDevContext(t, MustValidationFile(t), m.Schema())

	t.Run("Assertions", func(t *testing.T) {
		failures, err := development.RunAllAssertions(dc.DevContext, &dc.Assertions)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range failures {
			t.Errorf("%s:%d: %s", validationFile, f.Line, f.Message)
		}
		if n := len(dc.Assertions.AssertTrue) + len(dc.Assertions.AssertFalse); n < 200 {
			t.Errorf("only %d assertions ran; the suite has more than 200", n)
		}
	})

	t.Run("ExpectedRelations", func(t *testing.T) {
		_, failures, err := development.RunValidation(dc.DevContext, &dc.ExpectedRelations)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range failures {
			t.Errorf("%s: validation of %s: %s", validationFile, f.Context, f.Message)
		}
		if len(dc.ExpectedRelations.ValidationMap) == 0 {
			t.Error("no expected relations ran")
		}
	})

	t.Run("NoSchemaWarnings", func(t *testing.T) {
		warnings, err := development.GetWarnings(t.Context(), dc.DevContext)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range warnings {
			t.Errorf("%s:%d: %s", schema.GeneratedFile, w.Line, w.Message)
		}
	})
}

// TestValidationMatrixComplete checks that validation.yaml asserts every key of the model for every
// built-in role exactly once on the matrix tenant, and nothing else there for the matrix subjects.
func TestValidationMatrixComplete(t *testing.T) {
	m := MustEmbedded(t)
	vf := MustValidationFile(t)

	type cell struct{ key, role string }
	count := map[cell]int{}
	collect := func(list []blocks.Assertion) {
		for _, a := range list {
			res, sub := a.Relationship.Resource, a.Relationship.Subject
			role, ok := matrixSubjects[sub.ObjectType+":"+sub.ObjectID]
			if res.ObjectType != "tenant" || res.ObjectID != matrixTenant || !ok {
				continue
			}
			if sub.Relation != "..." {
				t.Errorf("matrix assertion %q: subject must be a plain user", a.RelationshipWithContextString)
				continue
			}
			k, err := authz.KeyFromRelation(res.Relation)
			if err == nil {
				if _, ok := m.Lookup(k.String()); !ok {
					err = fmt.Errorf("%s is not a key of the model", k)
				}
			}
			if err != nil {
				t.Errorf("matrix assertion %q: %v", a.RelationshipWithContextString, err)
				continue
			}
			count[cell{k.String(), role}]++
		}
	}
	collect(vf.Assertions.AssertTrue)
	collect(vf.Assertions.AssertFalse)

	for _, k := range m.Keys {
		for _, role := range schema.BuiltinRoles() {
			switch n := count[cell{k.Key.String(), role}]; n {
			case 1:
			case 0:
				t.Errorf("default-role matrix: no assertion for key %s and role %s on tenant:%s", k.Key, role, matrixTenant)
			default:
				t.Errorf("default-role matrix: key %s and role %s asserted %d times on tenant:%s; want exactly once", k.Key, role, n, matrixTenant)
			}
		}
	}
	if want := len(m.Keys) * len(schema.BuiltinRoles()); len(count) != want {
		t.Errorf("default-role matrix has %d cells, want %d", len(count), want)
	}
}

// TestValidationHarnessFails shows that the harness reports wrong expectations: a suite that cannot
// fail proves nothing.
func TestValidationHarnessFails(t *testing.T) {
	m := MustEmbedded(t)
	dc := MustDevContext(t, MustValidationFile(t), m.Schema())

	t.Run("Assertions", func(t *testing.T) {
		tests := []struct {
			name, assertions string
		}{
			// tenant_user gets no ScaiBunker key by default.
			{"WrongAssertTrue", "assertTrue:\n  - tenant:acme#scaibunker__create@user:acme_user\n"},
			// tenant_viewer does hold scaiskills:view.
			{"WrongAssertFalse", "assertFalse:\n  - tenant:acme#scaiskills__view@user:acme_viewer\n"},
			// The binder cannot approve its own binding.
			{"SelfApproval", "assertTrue:\n  - binding:acme/weather#scaiskills__grant@user:acme_binder\n"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				wrong, err := validationfile.ParseAssertionsBlock([]byte(tt.assertions))
				if err != nil {
					t.Fatal(err)
				}
				failures, err := development.RunAllAssertions(dc.DevContext, wrong)
				if err != nil {
					t.Fatal(err)
				}
				if got, want := len(failures), 1; got != want {
					t.Fatalf("got %d failures, want %d", got, want)
				}
				if got, want := failures[0].Kind, devinterface.DeveloperError_ASSERTION_FAILED; got != want {
					t.Errorf("got failure kind %v, want %v", got, want)
				}
			})
		}
	})

	t.Run("ExpectedRelations", func(t *testing.T) {
		// The binder is missing from the approvers of its own binding; claim it is there.
		wrong, err := validationfile.ParseExpectedRelationsBlock([]byte(`binding:acme/weather#scaiskills__grant:
  - "[user:acme_admin] is <tenant:acme#tenant_admin>"
  - "[user:acme_approver] is <role:acme/skill_approvers#member>"
  - "[user:acme_binder] is <role:acme/skill_approvers#member>"
  - "[user:northwind_admin] is <partner:northwind#admin>"
  - "[user:root] is <platform:scaigrid#super_admin>"
`))
		if err != nil {
			t.Fatal(err)
		}
		_, failures, err := development.RunValidation(dc.DevContext, wrong)
		if err != nil {
			t.Fatal(err)
		}
		if len(failures) == 0 {
			t.Fatal("a wrong expected relation passed validation")
		}
	})
}

// MustEmbedded loads the embedded model.
func MustEmbedded(tb testing.TB) *schema.Model {
	tb.Helper()
	m, err := schema.Embedded()
	if err != nil {
		tb.Fatalf("load embedded model: %v", err)
	}
	return m
}

// MustValidationFile decodes validation.yaml.
func MustValidationFile(tb testing.TB) *validationfile.ValidationFile {
	tb.Helper()
	data, err := os.ReadFile(validationFile)
	if err != nil {
		tb.Fatal(err)
	}
	vf, err := validationfile.DecodeValidationFile(data)
	if err != nil {
		tb.Fatalf("%s: %v", validationFile, err)
	}
	return vf
}

// MustDevContext loads the validation file's relationships into an in-memory SpiceDB with schemaText
// standing in for the schemaFile the validation file names.
func MustDevContext(tb testing.TB, vf *validationfile.ValidationFile, schemaText string) *development.YAMLDevContext {
	tb.Helper()
	if vf.SchemaFile != schema.GeneratedFile {
		tb.Fatalf("%s: schemaFile is %q, want %q", validationFile, vf.SchemaFile, schema.GeneratedFile)
	}
	fsys := fstest.MapFS{schema.GeneratedFile: {Data: []byte(schemaText)}}
	dc, devErrs, err := development.NewDevContextForValidationFile(tb.Context(), vf, development.WithSourceFS(fsys))
	if err != nil {
		tb.Fatal(err)
	}
	if devErrs != nil {
		var b strings.Builder
		for _, e := range devErrs.InputErrors {
			fmt.Fprintf(&b, "\n  %s line %d: %s (%s)", e.Source, e.Line, e.Message, e.Context)
		}
		tb.Fatalf("%s does not load:%s", validationFile, b.String())
	}
	tb.Cleanup(dc.DevContext.Dispose)
	return dc
}
