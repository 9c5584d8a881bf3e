package schema

import (
	"fmt"
	"iter"
	"path"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/scailabs/authzd/internal/authz"
)

// Manifest is one module's manifest, modules/<module>.yaml.
type Manifest struct {
	Module      string
	Description string
	File        string    // path inside the loaded file system, e.g. "modules/scaibunker.yaml"
	Keys        []KeySpec // in the order of the file
}

// KeySpec is one permission key with its description and the built-in roles that auto-grant it.
type KeySpec struct {
	Key         authz.Key
	Description string
	// Roles are the built-in roles holding the key without a custom role, in BuiltinRoles order.
	// RoleSuperAdmin is always first: it holds every key.
	Roles []string
}

// HasRole reports whether the built-in role auto-grants the key.
func (k KeySpec) HasRole(role string) bool { return slices.Contains(k.Roles, role) }

// LoadError is a problem in one source file of the schema: a manifest or core.zed.
// Load returns every problem it finds, joined with errors.Join.
type LoadError struct {
	File string // path inside the loaded file system, e.g. "modules/scaibunker.yaml"
	Line int    // 1-based line in File; 0 when unknown
	Key  string // the key as written when the problem concerns one key, else ""
	Msg  string
}

func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Key != "" {
		fmt.Fprintf(&b, ": key %q", e.Key)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// manifestFields and keyFields are the only YAML fields a manifest may use.
var (
	manifestFields = []string{"module", "description", "keys"}
	keyFields      = []string{"key", "description", "roles"}
)

// keyEntry is one entry of a manifest's keys list as written.
type keyEntry struct {
	key, description string
	roles            []string
	line             int
}

// parseManifest decodes and checks one manifest file on its own; checks across files are Load's.
// It walks the YAML nodes itself so that every error, including an unknown field, names the key.
func parseManifest(file string, data []byte) (Manifest, []keyEntry, []error) {
	var errs []error
	fail := func(line int, key, format string, args ...any) {
		errs = append(errs, &LoadError{File: file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
	}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		fail(0, "", "invalid YAML: %v", err)
		return Manifest{}, nil, errs
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		fail(0, "", "a manifest must be a YAML mapping with module, description and keys")
		return Manifest{}, nil, errs
	}

	m := Manifest{File: file}
	var entries []keyEntry
	top := doc.Content[0]
	seen := map[string]bool{}
	for name, value := range fields(top) {
		seen[name.Value] = true
		switch name.Value {
		case "module":
			decodeScalar(value, &m.Module, func(msg string) { fail(value.Line, "", "module: %s", msg) })
		case "description":
			decodeScalar(value, &m.Description, func(msg string) { fail(value.Line, "", "description: %s", msg) })
		case "keys":
			if value.Kind != yaml.SequenceNode {
				fail(value.Line, "", "keys must be a list")
				continue
			}
			for _, n := range value.Content {
				e, eerrs := parseKeyEntry(file, n)
				errs = append(errs, eerrs...)
				if len(eerrs) == 0 {
					entries = append(entries, e)
				}
			}
		default:
			fail(name.Line, "", "unknown field %q (allowed: %s)", name.Value, strings.Join(manifestFields, ", "))
		}
	}
	for _, f := range manifestFields {
		if !seen[f] {
			fail(top.Line, "", "missing field %q", f)
		}
	}
	if seen["keys"] && len(entries) == 0 && len(errs) == 0 {
		fail(top.Line, "", "keys is empty: a module declares at least one key")
	}

	if m.Module != "" {
		if err := authz.ValidModule(m.Module); err != nil {
			fail(top.Line, "", "%s", authz.ErrorMessage(err))
		} else if want := m.Module + ".yaml"; path.Base(file) != want {
			fail(top.Line, "", "the manifest of module %q must be named %s", m.Module, want)
		}
	}
	if seen["description"] && strings.TrimSpace(m.Description) == "" {
		fail(top.Line, "", "description is empty")
	}
	m.Description = oneLine(m.Description)
	return m, entries, errs
}

// fields yields the name and value nodes of a YAML mapping node, in order.
func fields(n *yaml.Node) iter.Seq2[*yaml.Node, *yaml.Node] {
	return func(yield func(*yaml.Node, *yaml.Node) bool) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if !yield(n.Content[i], n.Content[i+1]) {
				return
			}
		}
	}
}

// parseKeyEntry decodes one entry of the keys list.
func parseKeyEntry(file string, n *yaml.Node) (keyEntry, []error) {
	var errs []error
	e := keyEntry{line: n.Line}
	fail := func(line int, format string, args ...any) {
		errs = append(errs, &LoadError{File: file, Line: line, Key: e.key, Msg: fmt.Sprintf(format, args...)})
	}
	if n.Kind != yaml.MappingNode {
		fail(n.Line, "each entry of keys must be a mapping with key, description and roles")
		return e, errs
	}
	// Read the key first so that every later error can name it.
	for name, value := range fields(n) {
		if name.Value == "key" {
			decodeScalar(value, &e.key, func(msg string) { fail(value.Line, "key: %s", msg) })
		}
	}
	seen := map[string]bool{}
	for name, value := range fields(n) {
		seen[name.Value] = true
		switch name.Value {
		case "key":
		case "description":
			decodeScalar(value, &e.description, func(msg string) { fail(value.Line, "description: %s", msg) })
		case "roles":
			if value.Kind != yaml.SequenceNode {
				fail(value.Line, "roles must be a list of built-in roles")
				continue
			}
			for _, r := range value.Content {
				var role string
				decodeScalar(r, &role, func(msg string) { fail(r.Line, "roles: %s", msg) })
				e.roles = append(e.roles, role)
			}
		default:
			fail(name.Line, "unknown field %q (allowed: %s)", name.Value, strings.Join(keyFields, ", "))
		}
	}
	for _, f := range keyFields {
		if !seen[f] {
			fail(n.Line, "missing field %q", f)
		}
	}
	if seen["description"] && strings.TrimSpace(e.description) == "" {
		fail(n.Line, "description is empty")
	}
	e.description = oneLine(e.description)
	return e, errs
}

// checkRoles validates a key's roles and returns them in BuiltinRoles order.
func checkRoles(roles []string) ([]string, error) {
	seen := map[string]bool{}
	for _, r := range roles {
		if roleRank(r) < 0 {
			return nil, fmt.Errorf("unknown role %q (built-in roles: %s)", r, strings.Join(BuiltinRoles(), ", "))
		}
		if seen[r] {
			return nil, fmt.Errorf("role %q is listed twice", r)
		}
		seen[r] = true
	}
	if !seen[RoleSuperAdmin] {
		return nil, fmt.Errorf("roles must include %s: it holds every key", RoleSuperAdmin)
	}
	sorted := slices.Clone(roles)
	slices.SortFunc(sorted, func(a, b string) int { return roleRank(a) - roleRank(b) })
	return sorted, nil
}

// decodeScalar decodes a YAML scalar into s, reporting anything else through fail.
func decodeScalar(n *yaml.Node, s *string, fail func(msg string)) {
	if n.Kind != yaml.ScalarNode {
		fail("must be a string")
		return
	}
	if err := n.Decode(s); err != nil {
		fail(err.Error())
	}
}

// oneLine collapses runs of white space, so a folded YAML description becomes one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
