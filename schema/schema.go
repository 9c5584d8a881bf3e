// Package schema holds the authzd permission model: the module manifests (modules/*.yaml), the
// hand-written core SpiceDB schema (core.zed), and the full schema generated from both (authzd.zed).
//
// A module's keys and the built-in roles that auto-grant them live only in its manifest; the generator
// turns each key into a tenant relation and permission, so the default role mapping is versioned with
// the code and checked by the validation suite (validation.yaml). See docs/schema.md.
package schema

import (
	"embed"
	"io/fs"
)

//go:generate go run ../cmd/schemagen -dir .

// sources holds core.zed, the manifests, and the committed authzd.zed. The pattern *.zed, rather than
// the file names, keeps the package (and so cmd/schemagen) building when authzd.zed is missing.
//
//go:embed *.zed modules/*.yaml
var sources embed.FS

// Embedded loads the model from the core schema and manifests compiled into the binary.
func Embedded() (*Model, error) { return Load(sources) }

// Text returns the committed, generated schema authzd.zed as compiled into the binary: the schema
// authzd writes to SpiceDB. A test fails when it differs from what the sources generate.
// It is empty only if authzd.zed was missing at build time.
func Text() string {
	b, err := fs.ReadFile(sources, GeneratedFile)
	if err != nil {
		return ""
	}
	return string(b)
}
