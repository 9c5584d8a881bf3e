package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of docker-compose.yml this test checks.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string                       `yaml:"image"`
	Build       map[string]string            `yaml:"build"`
	Command     []string                     `yaml:"command"`
	Environment map[string]string            `yaml:"environment"`
	DependsOn   map[string]map[string]string `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Ports []string `yaml:"ports"`
}

// TestComposeFile checks docker-compose.yml and the Dockerfile without a Docker engine: the services,
// their order of start, healthchecks, pinned images and the variables authzd reads. With the compose
// plugin installed it also runs `docker compose config`, which needs no engine.
func TestComposeFile(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}

	for _, name := range []string{"postgres", "spicedb-migrate", "spicedb", "authzd"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("service %q missing; have %v", name, mapKeys(c.Services))
		}
	}
	pg, migrate, spice, authzd := c.Services["postgres"], c.Services["spicedb-migrate"], c.Services["spicedb"], c.Services["authzd"]

	t.Run("Postgres", func(t *testing.T) {
		if !regexp.MustCompile(`^postgres:\d+`).MatchString(pg.Image) {
			t.Errorf("postgres image %q is not pinned to a major version", pg.Image)
		}
		if !strings.Contains(strings.Join(pg.Command, " "), "track_commit_timestamp=on") {
			t.Errorf("postgres command %v lacks track_commit_timestamp=on", pg.Command)
		}
		mustHealthcheck(t, "postgres", pg, "pg_isready")
	})

	t.Run("SpiceDBMigrate", func(t *testing.T) {
		mustSpiceDBImage(t, migrate)
		if got := strings.Join(migrate.Command, " "); got != "migrate head" {
			t.Errorf("spicedb-migrate command = %q, want \"migrate head\"", got)
		}
		mustDependOn(t, "spicedb-migrate", migrate, "postgres", "service_healthy")
		mustPostgresDatastore(t, "spicedb-migrate", migrate)
	})

	t.Run("SpiceDB", func(t *testing.T) {
		mustSpiceDBImage(t, spice)
		if got := strings.Join(spice.Command, " "); got != "serve" {
			t.Errorf("spicedb command = %q, want \"serve\"", got)
		}
		mustPostgresDatastore(t, "spicedb", spice)
		if key := spice.Environment["SPICEDB_GRPC_PRESHARED_KEY"]; !strings.HasPrefix(key, "${SPICEDB_PRESHARED_KEY:?") {
			t.Errorf("SPICEDB_GRPC_PRESHARED_KEY = %q, want it required from the environment (${SPICEDB_PRESHARED_KEY:?...})", key)
		}
		mustHealthcheck(t, "spicedb", spice, "grpc_health_probe")
		mustDependOn(t, "spicedb", spice, "spicedb-migrate", "service_completed_successfully")
	})

	t.Run("Authzd", func(t *testing.T) {
		if authzd.Build["context"] != "." || authzd.Build["dockerfile"] != "Dockerfile" {
			t.Errorf("authzd build = %v, want context . and dockerfile Dockerfile", authzd.Build)
		}
		env := authzd.Environment
		for k, want := range map[string]string{
			"AUTHZ_SPICEDB_ENDPOINT": "spicedb:50051",
			"AUTHZ_SPICEDB_INSECURE": "true",
			"AUTHZ_SPICEDB_TOKEN":    "${SPICEDB_PRESHARED_KEY:?",
			"AUTHZ_DATABASE_URL":     "postgres://",
			"AUTHZ_ADMIN_TOKEN":      "${AUTHZ_ADMIN_TOKEN:?",
		} {
			if !strings.HasPrefix(env[k], want) {
				t.Errorf("authzd %s = %q, want it to start with %q", k, env[k], want)
			}
		}
		for k := range env {
			if !strings.HasPrefix(k, "AUTHZ_") {
				t.Errorf("authzd environment %s is not an AUTHZ_ variable", k)
			}
		}
		mustHealthcheck(t, "authzd", authzd, "/healthz")
		mustDependOn(t, "authzd", authzd, "spicedb", "service_healthy")
		mustDependOn(t, "authzd", authzd, "postgres", "service_healthy")
	})

	t.Run("Dockerfile", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		df := strings.ReplaceAll(string(b), "\\\n", " ") // join continuation lines
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^FROM golang:1\.26\S* AS build$`),
			regexp.MustCompile(`(?m)^FROM (alpine:\d|gcr\.io/distroless/static)`),
			regexp.MustCompile(`(?m)^COPY --from=build `),
			regexp.MustCompile(`(?m)^RUN .*go build .*\./cmd/authzd`),
			regexp.MustCompile(`(?m)^USER (\d+|nonroot)`),
			regexp.MustCompile(`(?m)^EXPOSE 8080$`),
		} {
			if !want.MatchString(df) {
				t.Errorf("Dockerfile lacks a line matching %s", want)
			}
		}
		if strings.Contains(df, "USER root") {
			t.Error("Dockerfile runs as root")
		}
	})

	t.Run("DockerComposeConfig", func(t *testing.T) {
		if err := exec.Command("docker", "compose", "version").Run(); err != nil {
			t.Skip("the docker compose plugin is not installed; the YAML checks above stand in for `docker compose config`")
		}
		cmd := exec.Command("docker", "compose", "-f", filepath.Join(root, "docker-compose.yml"), "config", "--quiet")
		cmd.Env = append(os.Environ(), "SPICEDB_PRESHARED_KEY=k", "AUTHZ_ADMIN_TOKEN=t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker compose config: %v\n%s", err, out)
		}
	})
}

func mustSpiceDBImage(t *testing.T, s composeService) {
	t.Helper()
	if s.Image != spicedbImage {
		t.Errorf("image %q, want %q (the version go.mod pins)", s.Image, spicedbImage)
	}
}

func mustPostgresDatastore(t *testing.T, name string, s composeService) {
	t.Helper()
	if s.Environment["SPICEDB_DATASTORE_ENGINE"] != "postgres" || !strings.HasPrefix(s.Environment["SPICEDB_DATASTORE_CONN_URI"], "postgres://") {
		t.Errorf("%s does not use the postgres datastore: %v", name, s.Environment)
	}
}

func mustHealthcheck(t *testing.T, name string, s composeService, contains string) {
	t.Helper()
	if s.Healthcheck == nil || !strings.Contains(strings.Join(s.Healthcheck.Test, " "), contains) {
		t.Errorf("%s healthcheck should use %s", name, contains)
	}
}

func mustDependOn(t *testing.T, name string, s composeService, dep, condition string) {
	t.Helper()
	if got := s.DependsOn[dep]["condition"]; got != condition {
		t.Errorf("%s depends_on %s: condition %q, want %q", name, dep, got, condition)
	}
}

func mapKeys[V any](m map[string]V) []string {
	return slices.Sorted(func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	})
}
