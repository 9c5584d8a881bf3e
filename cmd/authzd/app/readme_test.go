package app

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"

	authzhttp "github.com/scailabs/authzd/internal/http"
	"github.com/scailabs/authzd/internal/spicedb"
)

// TestREADMEConfigTable: the README's configuration table lists every
// variable of Config with its default, and nothing else. The env tags are the
// source of truth; the table is their documentation.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	// | `AUTHZ_X` | default cell | meaning |
	row := regexp.MustCompile("(?m)^\\| `(AUTHZ_[A-Z0-9_]+)` \\| ([^|]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readme), -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	typ := reflect.TypeFor[Config]()
	inConfig := map[string]bool{}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := f.Tag.Get("env")
		if name == "" {
			continue
		}
		inConfig[name] = true
		cell, ok := documented[name]
		if !ok {
			t.Errorf("README's configuration table lacks %s (Config.%s)", name, f.Name)
			continue
		}
		def, hasDefault := f.Tag.Lookup("envDefault")
		switch {
		case hasDefault && !strings.HasPrefix(cell, "`"+def+"`"):
			t.Errorf("README: %s defaults to %s; the env tag says `%s`", name, cell, def)
		case !hasDefault && strings.HasPrefix(cell, "`"):
			t.Errorf("README: %s defaults to %s; Config has no default (say what empty means)", name, cell)
		}
	}
	for name := range documented {
		if !inConfig[name] {
			t.Errorf("README's configuration table lists %s, which Config does not read", name)
		}
	}
}

// TestConstructorDefaults: what the adapters do with a zero setting is what
// the environment's default says, so a Config built by hand (tests, the
// benchmark) behaves like a deployed authzd.
func TestConstructorDefaults(t *testing.T) {
	d, err := env.ParseAsWithOptions[Config](env.Options{Environment: map[string]string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		env, code any
	}{
		{"AUTHZ_SPICEDB_TIMEOUT", d.SpiceDBTimeout, spicedb.DefaultTimeout},
		{"AUTHZ_SPICEDB_WRITE_TIMEOUT", d.SpiceDBWriteTimeout, spicedb.DefaultWriteTimeout},
		{"AUTHZ_SPICEDB_START_TIMEOUT", d.SpiceDBStartTimeout, spicedb.DefaultStartTimeout},
		{"AUTHZ_SPICEDB_CHECK_SLOTS", d.SpiceDBCheckSlots, spicedb.DefaultCheckSlots},
		{"AUTHZ_MAX_BODY_BYTES", d.MaxBodyBytes, int64(authzhttp.DefaultMaxBodyBytes)},
		{"AUTHZ_TOKEN_CACHE_TTL", d.TokenCacheTTL, authzhttp.DefaultTokenCacheTTL},
		{"AUTHZ_SHUTDOWN_TIMEOUT", d.ShutdownTimeout, defaultShutdownTimeout},
		{"AUTHZ_IMPORT_MAX_BYTES", int64(d.ImportMaxBytes), int64(authzhttp.DefaultImportMaxBytes)},
		{"AUTHZ_IMPORT_TIMEOUT", d.ImportTimeout, authzhttp.DefaultImportTimeout},
		{"AUTHZ_IMPORT_BATCH", d.ImportBatch, authzhttp.DefaultImportBatch},
		{"AUTHZ_IMPORT_WRITERS", d.ImportWriters, authzhttp.DefaultImportWriters},
	} {
		if c.env != c.code {
			t.Errorf("%s defaults to %v; a zero setting means %v", c.name, c.env, c.code)
		}
	}
}
