package integration

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"
)

// TestPostgresImage checks the settings the world's Postgres image takes from its environment, the way
// compose and the suite use them: it refuses to start without a password unless trust is asked for,
// password auth over TCP, the database it is asked to create, and (the image `make images` builds)
// track_commit_timestamp on by default. The official image behaves the same on all but the last.
func TestPostgresImage(t *testing.T) {
	w := mustWorld(t)
	if w.docker == nil {
		t.Skip("images are tested in the Docker world only; this is the local world")
	}
	d := w.docker
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	run := func(t *testing.T, env map[string]string, strategy wait.Strategy) *testcontainers.DockerContainer {
		t.Helper()
		c, err := testcontainers.Run(ctx, d.postgresImage,
			testcontainers.WithEnv(env),
			testcontainers.WithExposedPorts("5432/tcp"),
			withLoopbackPorts("5432/tcp"),
			testcontainers.WithLabels(runLabels()),
			testcontainers.WithWaitStrategy(strategy),
		)
		testcontainers.CleanupContainer(t, c)
		if err != nil {
			t.Fatalf("run %s: %v", d.postgresImage, err)
		}
		return c
	}
	ready := wait.ForExec([]string{"pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"}).
		WithPollInterval(250 * time.Millisecond).WithStartupTimeout(2 * time.Minute)

	t.Run("NoPasswordRefused", func(t *testing.T) {
		c := run(t, nil, wait.ForExit().WithExitTimeout(time.Minute))
		state, err := c.State(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if state.ExitCode == 0 {
			t.Errorf("started without POSTGRES_PASSWORD or POSTGRES_HOST_AUTH_METHOD=trust; want a refusal")
		}
	})

	t.Run("Password", func(t *testing.T) {
		c := run(t, map[string]string{"POSTGRES_USER": "authzd", "POSTGRES_PASSWORD": "s3cret", "POSTGRES_DB": "spicedb"}, ready)
		endpoint, err := loopbackEndpoint(ctx, c, "5432/tcp")
		if err != nil {
			t.Fatal(err)
		}
		_, err = pgx.Connect(ctx, "postgres://authzd:wrong@"+endpoint+"/spicedb?sslmode=disable")
		if pe := (*pgconn.PgError)(nil); !errors.As(err, &pe) || pe.Code != "28P01" {
			t.Errorf("wrong password: %v, want SQLSTATE 28P01 (invalid_password)", err)
		}
		conn, err := pgx.Connect(ctx, "postgres://authzd:s3cret@"+endpoint+"/spicedb?sslmode=disable")
		if err != nil {
			t.Fatalf("right password, database spicedb: %v", err)
		}
		defer conn.Close(context.Background())
		var on string
		if err := conn.QueryRow(ctx, "show track_commit_timestamp").Scan(&on); err != nil {
			t.Fatal(err)
		}
		if d.postgresImage == localPostgresImage() && on != "on" {
			t.Errorf("track_commit_timestamp = %q, want on by default in %s", on, d.postgresImage)
		}
	})

	t.Run("Trust", func(t *testing.T) {
		c := run(t, map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"}, ready)
		endpoint, err := loopbackEndpoint(ctx, c, "5432/tcp")
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, "postgres://postgres@"+endpoint+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatalf("trust: %v", err)
		}
		defer conn.Close(context.Background())
		var user string
		if err := conn.QueryRow(ctx, "select current_user").Scan(&user); err != nil || !strings.EqualFold(user, "postgres") {
			t.Errorf("current_user = %q, %v; want postgres", user, err)
		}
	})
}
