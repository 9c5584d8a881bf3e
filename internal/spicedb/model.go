package spicedb

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/authzed/spicedb/pkg/namespace"
	iv1 "github.com/authzed/spicedb/pkg/proto/impl/v1"
	"github.com/authzed/spicedb/pkg/schemadsl/compiler"
	"github.com/authzed/spicedb/pkg/schemadsl/generator"
	"github.com/authzed/spicedb/pkg/schemadsl/input"

	"github.com/scailabs/authzd/internal/authz"
)

// Object types of the core schema that are not tenant resources.
const (
	typeUser           = authz.TypeUser
	typeServiceAccount = authz.TypeServiceAccount
	typePlatform       = authz.TypePlatform
	typePartner        = authz.TypePartner
	typeTenant         = authz.TypeTenant
	typeRole           = authz.TypeRole

	// platformID is the single platform object.
	platformID = authz.PlatformID

	relPlatform   = authz.RelPlatform
	relPartner    = authz.RelPartner
	relAdmin      = authz.RelAdmin
	relSuperAdmin = authz.RoleSuperAdmin
	relTenant     = authz.RelTenant
	relMember     = authz.RelMember
	relOwner      = authz.RelOwner
)

// model is what authzd reads off the compiled schema: the resource types and
// the permissions each one defines.
type model struct {
	compiled  *compiler.CompiledSchema
	resources map[string]map[string]bool // type -> permission names
	tenant    map[string]bool            // tenant permission names
	// grants lists every grant_<key> relation of the tenant definition: the
	// whole catalogue a custom role can hold, so that replacing a role's keys is
	// one write that needs no read (see PutRole).
	grants []string
}

func parseModel(text string) (*model, error) {
	compiled, err := compiler.Compile(compiler.InputSchema{
		Source:       input.Source("schema"),
		SchemaString: text,
	}, compiler.AllowUnprefixedObjectType())
	if err != nil {
		return nil, fmt.Errorf("compile schema: %w", err)
	}
	m := &model{compiled: compiled, resources: map[string]map[string]bool{}, tenant: map[string]bool{}}
	for _, def := range compiled.ObjectDefinitions {
		perms := map[string]bool{}
		rels := map[string]bool{}
		for _, rel := range def.GetRelation() {
			if namespace.GetRelationKind(rel) == iv1.RelationMetadata_PERMISSION {
				perms[rel.GetName()] = true
			} else {
				rels[rel.GetName()] = true
			}
		}
		switch {
		case def.GetName() == typeTenant:
			m.tenant = perms
			for r := range rels {
				if strings.HasPrefix(r, authz.GrantPrefix) {
					m.grants = append(m.grants, r)
				}
			}
			sort.Strings(m.grants)
		case def.GetName() == typeRole:
		case rels[relTenant] && rels[relOwner]:
			// A resource type is any definition that belongs to a tenant and has an owner.
			m.resources[def.GetName()] = perms
		}
	}
	return m, nil
}

func (m *model) resourceTypeNames() []string {
	names := make([]string, 0, len(m.resources))
	for n := range m.resources {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// canonical renders the schema the way SpiceDB's ReadSchema does, so the two
// can be compared without spurious differences in whitespace or comments.
func (m *model) canonical(ctx context.Context) (string, error) {
	defs := make([]compiler.SchemaDefinition, 0, len(m.compiled.OrderedDefinitions))
	defs = append(defs, m.compiled.OrderedDefinitions...)
	text, _, err := generator.GenerateSchema(ctx, defs)
	return text, err
}

// syncSchema writes the schema when SpiceDB's differs from it. SpiceDB
// refuses changes that would orphan existing relationships; that refusal is
// returned with SpiceDB's explanation.
func (g *Graph) syncSchema(ctx context.Context, text string) error {
	want, err := g.model.canonical(ctx)
	if err != nil {
		return fmt.Errorf("render schema: %w", err)
	}
	cctx, cancel := g.call(ctx)
	defer cancel()
	got, err := g.schema.ReadSchema(cctx, &v1.ReadSchemaRequest{})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("read spicedb schema: %w", mapError(err, "read schema"))
	}
	if err == nil && sameSchema(got.GetSchemaText(), want) {
		g.logger.Info("spicedb schema is current")
		return nil
	}
	wctx, wcancel := g.call(ctx)
	defer wcancel()
	if _, err := g.schema.WriteSchema(wctx, &v1.WriteSchemaRequest{Schema: text}); err != nil {
		if mapped := mapError(err, "write schema"); authz.ErrorCode(mapped) == authz.EUNAVAILABLE {
			return fmt.Errorf("write spicedb schema: %w", mapped)
		}
		return fmt.Errorf("spicedb refused the schema from schema/authzd.zed: %w", err)
	}
	g.logger.Info("wrote spicedb schema")
	return nil
}

func sameSchema(a, b string) bool {
	norm := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	return slices.Equal(norm(a), norm(b))
}
