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

// TestComposeFile checks docker-compose.yml and the Dockerfiles without a Docker engine: the services,
// their order of start, healthchecks, image settings and the variables authzd reads. With Compose
// installed (v2 or v1) it also runs `config`, which needs no engine. TestCompose runs the file.
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
		if want := imageSetting(envPostgresImage, officialPostgresImage()); pg.Image != want {
			t.Errorf("postgres image %q, want %q", pg.Image, want)
		}
		if !strings.Contains(strings.Join(pg.Command, " "), "track_commit_timestamp=on") {
			t.Errorf("postgres command %v lacks track_commit_timestamp=on", pg.Command)
		}
		// Over TCP, so that the server the image runs while it initialises never counts as healthy.
		mustHealthcheck(t, "postgres", pg, "pg_isready -q -h 127.0.0.1")
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
		if want := imageSetting(envAuthzdImage, defaultAuthzdImage()); authzd.Image != want {
			t.Errorf("authzd image %q, want %q", authzd.Image, want)
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
		mustHealthcheck(t, "authzd", authzd, "healthprobe -url http://127.0.0.1:8080/healthz")
		mustDependOn(t, "authzd", authzd, "spicedb", "service_healthy")
		mustDependOn(t, "authzd", authzd, "postgres", "service_healthy")
	})

	// ./Dockerfile compiles authzd in a golang stage (for machines that can pull it); docker/authzd/Dockerfile,
	// which `make images` uses, takes binaries compiled on the host. Both end in the same empty image.
	t.Run("Dockerfile", func(t *testing.T) {
		df := readDockerfile(t, filepath.Join(root, "Dockerfile"))
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^FROM golang:1\.\d+\S* AS build$`),
			regexp.MustCompile(`(?m)^RUN .*go build .*\./cmd/authzd .*go build .*\./cmd/healthprobe`),
			regexp.MustCompile(`(?m)^COPY --from=build /out/authzd /out/healthprobe /usr/local/bin/$`),
		} {
			if !want.MatchString(df) {
				t.Errorf("Dockerfile lacks a line matching %s", want)
			}
		}
		local := readDockerfile(t, filepath.Join(root, "docker", "authzd", "Dockerfile"))
		if got := fromLines(local); !slices.Equal(got, []string{"FROM scratch"}) {
			t.Errorf("docker/authzd/Dockerfile: FROM lines %q, want only FROM scratch", got)
		}
		if !strings.Contains(local, "\nCOPY authzd healthprobe /usr/local/bin/\n") {
			t.Error("docker/authzd/Dockerfile does not copy authzd and healthprobe to /usr/local/bin/")
		}
		runtime := df[strings.LastIndex(df, "\nFROM "):]
		for _, d := range []string{"ENV", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"} {
			got, want := instruction(local, d), instruction(runtime, d)
			if got == "" || got != want {
				t.Errorf("%s: docker/authzd/Dockerfile has %q, ./Dockerfile's runtime stage %q; keep them alike", d, got, want)
			}
		}
		for _, want := range []string{"FROM scratch", "USER 10001:10001", "EXPOSE 8080", `ENTRYPOINT ["authzd"]`} {
			if !strings.Contains(runtime, "\n"+want+"\n") {
				t.Errorf("Dockerfile's runtime stage lacks %q", want)
			}
		}
	})

	t.Run("SpiceDBDockerfile", func(t *testing.T) {
		df := readDockerfile(t, filepath.Join(root, "docker", "spicedb", "Dockerfile"))
		if got := fromLines(df); !slices.Equal(got, []string{"FROM scratch"}) {
			t.Errorf("FROM lines %q, want only FROM scratch", got)
		}
		for _, want := range []string{
			"COPY spicedb /usr/local/bin/spicedb",
			"COPY healthprobe /usr/local/bin/grpc_health_probe", // compose's healthcheck, as in the official image
			`ENTRYPOINT ["spicedb"]`,
		} {
			if !strings.Contains(df, "\n"+want+"\n") {
				t.Errorf("docker/spicedb/Dockerfile lacks %q", want)
			}
		}
	})

	t.Run("DockerComposeConfig", func(t *testing.T) {
		cli, _, err := composeCLI()
		if err != nil {
			t.Skipf("%v; the YAML checks above stand in for `docker compose config`", err)
		}
		args := append(append([]string{}, cli[1:]...), "-p", "authzd", "-f", filepath.Join(root, "docker-compose.yml"), "config", "--quiet")
		cmd := exec.Command(cli[0], args...)
		cmd.Env = append(os.Environ(), "SPICEDB_PRESHARED_KEY=k", "AUTHZ_ADMIN_TOKEN=t")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("docker compose config: %v\n%s", err, out)
		}
	})
}

func mustSpiceDBImage(t *testing.T, s composeService) {
	t.Helper()
	if want := imageSetting(envSpiceDBImage, officialSpiceDBImage()); s.Image != want {
		t.Errorf("image %q, want %q (the version go.mod pins)", s.Image, want)
	}
}

// imageSetting is how docker-compose.yml names an image: a variable with the default image.
func imageSetting(env, def string) string { return "${" + env + ":-" + def + "}" }

// readDockerfile returns a Dockerfile with its continuation lines joined, starting with a newline.
func readDockerfile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return "\n" + strings.ReplaceAll(string(b), "\\\n", " ")
}

func fromLines(df string) []string {
	return regexp.MustCompile(`(?m)^FROM .*$`).FindAllString(df, -1)
}

// instruction returns the first line of df that starts with the instruction d, spaces collapsed.
func instruction(df, d string) string {
	m := regexp.MustCompile(`(?m)^` + d + ` .*$`).FindString(df)
	return strings.Join(strings.Fields(m), " ")
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
