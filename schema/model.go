package schema

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/scailabs/authzd/internal/authz"
)

// File names inside the file system given to Load.
const (
	CoreFile      = "core.zed"       // the hand-written core schema
	ModulesGlob   = "modules/*.yaml" // one manifest per module
	GeneratedFile = "authzd.zed"     // the generated full schema, written by cmd/schemagen
)

// Model is the permission model: the modules, their keys and the full SpiceDB schema built from them.
// A Model is read-only once loaded.
type Model struct {
	Modules   []Manifest // sorted by module
	Keys      []KeySpec  // every key of every module, sorted by module, then key
	Resources []Resource // resource types of the core schema, sorted by type

	schema string
	index  map[string]int // key -> index in Keys
}

// Resource is an object type of the core schema whose permissions are named after keys, such as bunker.
type Resource struct {
	Type string
	Keys []authz.Key // the keys that can be checked on an object of the type, sorted
}

// Load reads CoreFile and the manifests ModulesGlob from fsys, checks them, and builds the full schema.
// The error joins one *LoadError per problem found, each naming its file and, if any, its key.
func Load(fsys fs.FS) (*Model, error) {
	coreBytes, err := fs.ReadFile(fsys, CoreFile)
	if err != nil {
		return nil, &LoadError{File: CoreFile, Msg: fmt.Sprintf("cannot read: %v", err)}
	}
	core := string(coreBytes)
	tenantNames, err := coreTenantNames(core)
	if err != nil {
		return nil, err
	}

	files, err := fs.Glob(fsys, ModulesGlob)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, &LoadError{File: ModulesGlob, Msg: "no module manifests found"}
	}
	slices.Sort(files)

	var errs []error
	m := &Model{index: map[string]int{}}
	c := newKeyChecker(tenantNames)
	for _, file := range files {
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			errs = append(errs, &LoadError{File: file, Msg: fmt.Sprintf("cannot read: %v", err)})
			continue
		}
		man, entries, ferrs := parseManifest(file, data)
		if len(ferrs) > 0 {
			errs = append(errs, ferrs...)
			continue
		}
		for _, e := range entries {
			spec, err := c.check(man, e)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			man.Keys = append(man.Keys, spec)
			m.Keys = append(m.Keys, spec)
		}
		m.Modules = append(m.Modules, man)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	slices.SortFunc(m.Modules, func(a, b Manifest) int { return cmp.Compare(a.Module, b.Module) })
	slices.SortFunc(m.Keys, func(a, b KeySpec) int {
		return cmp.Or(cmp.Compare(a.Key.Module(), b.Key.Module()), cmp.Compare(a.Key.String(), b.Key.String()))
	})
	for i, k := range m.Keys {
		m.index[k.Key.String()] = i
	}
	if err := m.build(core); err != nil {
		return nil, err
	}
	return m, nil
}

// origin is where a key or a SpiceDB name was first defined: a key of a manifest, or core.zed.
type origin struct {
	file string
	line int
	key  string
}

func (o origin) String() string {
	if o.key == "" {
		return "the tenant definition of " + o.file
	}
	return fmt.Sprintf("key %q (%s:%d)", o.key, o.file, o.line)
}

// keyChecker checks keys one by one, across all manifests, against the keys seen before
// and the hand-written names of the core's tenant definition.
type keyChecker struct {
	keys  map[string]origin // key -> first definition
	names map[string]origin // SpiceDB name on tenant -> its definition
}

func newKeyChecker(tenantNames []string) *keyChecker {
	c := &keyChecker{keys: map[string]origin{}, names: map[string]origin{}}
	for _, n := range tenantNames {
		c.names[n] = origin{file: CoreFile}
	}
	return c
}

// check validates one entry of a manifest and records its key and generated names.
func (c *keyChecker) check(man Manifest, e keyEntry) (KeySpec, error) {
	here := origin{file: man.File, line: e.line, key: e.key}
	fail := func(format string, args ...any) error {
		return &LoadError{File: man.File, Line: e.line, Key: e.key, Msg: fmt.Sprintf(format, args...)}
	}
	k, err := authz.ParseKey(e.key)
	if err != nil {
		return KeySpec{}, fail("malformed key: %s", authz.ErrorMessage(err))
	}
	if k.Module() != man.Module {
		return KeySpec{}, fail("key belongs to module %q, but the manifest declares module %q", k.Module(), man.Module)
	}
	roles, err := checkRoles(e.roles)
	if err != nil {
		return KeySpec{}, fail("%v", err)
	}
	if first, dup := c.keys[e.key]; dup {
		return KeySpec{}, fail("duplicate key: already defined as %s", first)
	}
	for _, name := range []string{k.Relation(), k.GrantRelation()} {
		if other, taken := c.names[name]; taken {
			return KeySpec{}, fail("collision: its SpiceDB name %q is already used by %s", name, other)
		}
	}
	c.keys[e.key] = here
	c.names[k.Relation()] = here
	c.names[k.GrantRelation()] = here
	return KeySpec{Key: k, Description: e.description, Roles: roles}, nil
}

// Lookup returns the key's spec, if the key is part of the model.
func (m *Model) Lookup(key string) (KeySpec, bool) {
	i, ok := m.index[key]
	if !ok {
		return KeySpec{}, false
	}
	return m.Keys[i], true
}

// Resource returns the resource type named typ, if the core schema defines it.
func (m *Model) Resource(typ string) (Resource, bool) {
	i := slices.IndexFunc(m.Resources, func(r Resource) bool { return r.Type == typ })
	if i < 0 {
		return Resource{}, false
	}
	return m.Resources[i], true
}

// Schema returns the full SpiceDB schema built from the core and the manifests.
// For the embedded model it equals Text() whenever the committed authzd.zed is up to date.
func (m *Model) Schema() string { return m.schema }

// lineOf returns the 1-based line of the first occurrence of s in text, or 0.
func lineOf(text, s string) int {
	i := strings.Index(text, s)
	if i < 0 {
		return 0
	}
	return strings.Count(text[:i], "\n") + 1
}
