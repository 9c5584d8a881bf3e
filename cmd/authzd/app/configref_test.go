package app

import (
	"fmt"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"

	authzhttp "github.com/scailabs/authzd/internal/http"
	"github.com/scailabs/authzd/internal/spicedb"
)

// TestConfigurationReference: docs/configuration.md lists every variable of
// Config with its default, and nothing else. The env tags are the source of
// truth; the page is their documentation.
func TestConfigurationReference(t *testing.T) {
	page, err := os.ReadFile("../../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	documented, err := configRows(string(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, problem := range configDrift(reflect.TypeFor[Config](), documented) {
		t.Error("docs/configuration.md: " + problem)
	}
}

// configRow matches a row of the reference: | `AUTHZ_X` | default cell | meaning |
var configRow = regexp.MustCompile("(?m)^\\| `(AUTHZ_[A-Z0-9_]+)` \\| ([^|]*) \\|")

// configRows reads the variables the page lists, with their default cells.
func configRows(page string) (map[string]string, error) {
	documented := map[string]string{}
	for _, m := range configRow.FindAllStringSubmatch(page, -1) {
		if _, dup := documented[m[1]]; dup {
			return nil, fmt.Errorf("%s is listed twice", m[1])
		}
		documented[m[1]] = strings.TrimSpace(m[2])
	}
	return documented, nil
}

// configDrift compares the env tags of typ's fields with the documented rows.
func configDrift(typ reflect.Type, documented map[string]string) []string {
	var problems []string
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
			problems = append(problems, fmt.Sprintf("lacks %s (Config.%s)", name, f.Name))
			continue
		}
		def, hasDefault := f.Tag.Lookup("envDefault")
		switch {
		case hasDefault && !strings.HasPrefix(cell, "`"+def+"`"):
			problems = append(problems, fmt.Sprintf("%s defaults to %s; the env tag says `%s`", name, cell, def))
		case !hasDefault && strings.HasPrefix(cell, "`"):
			problems = append(problems, fmt.Sprintf("%s defaults to %s; Config has no default (say what empty means)", name, cell))
		}
	}
	for _, name := range slices.Sorted(maps.Keys(documented)) {
		if !inConfig[name] {
			problems = append(problems, fmt.Sprintf("lists %s, which Config does not read", name))
		}
	}
	return problems
}

// TestConfigDrift: the comparison catches a missing variable, a wrong default,
// a default where there is none, and a variable the code does not read.
func TestConfigDrift(t *testing.T) {
	type cfg struct {
		Addr  string `env:"AUTHZ_A" envDefault:":8080"`
		Token string `env:"AUTHZ_B"`
		Rate  int    `env:"AUTHZ_C" envDefault:"4"`
	}
	page := "| `AUTHZ_A` | `:9090` | wrong default |\n| `AUTHZ_B` | `x` | has none |\n| `AUTHZ_D` | `1` | not read |\n"
	documented, err := configRows(page)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(configDrift(reflect.TypeFor[cfg](), documented), "\n")
	for _, want := range []string{"AUTHZ_A defaults to `:9090`", "AUTHZ_B defaults to `x`", "lacks AUTHZ_C", "lists AUTHZ_D"} {
		if !strings.Contains(got, want) {
			t.Errorf("drift report lacks %q:\n%s", want, got)
		}
	}
	if _, err := configRows(page + "| `AUTHZ_A` | `:8080` | again |\n"); err == nil {
		t.Error("a variable listed twice was accepted")
	}
	ok := "| `AUTHZ_A` | `:8080` | listen address |\n| `AUTHZ_B` | (empty) | token |\n| `AUTHZ_C` | `4` | slots |\n"
	documented, _ = configRows(ok)
	if p := configDrift(reflect.TypeFor[cfg](), documented); len(p) != 0 {
		t.Errorf("a matching page reported %q", p)
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
