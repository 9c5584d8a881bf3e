// Command authzd serves ScaiGrid's module permissions from SpiceDB over HTTP
// and audits every decision in Postgres.
//
//	authzd                      serve (configured from AUTHZ_* variables)
//	authzd migrate              apply the audit database migrations
//	authzd migrate --status     print applied vs. known migrations (exit 1 when pending)
//	authzd token create --name NAME --scope check [--scope provision ...] [--tenant T ...]
//	authzd token list
//	authzd token revoke ID
//	authzd audit verify [--since TIME] [--public-key FILE ...]
//	authzd audit keygen --out FILE
//	authzd audit rotate-key --new-key FILE
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/authz"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authzd:", err)
		os.Exit(1)
	}
}

const usage = `usage:
  authzd                    serve the HTTP API (configuration: AUTHZ_* environment variables, see docs/configuration.md)
  authzd migrate            apply the audit database migrations and exit
  authzd migrate --status   print the migrations applied and known; exit 1 when some are pending
  authzd token create --name NAME --scope SCOPE [--scope SCOPE ...] [--tenant T ...]
                            create a service token (scopes: check, provision, audit:read, admin), reaching
                            only the --tenant tenants when given; prints it once
  authzd token list         list tokens (never their secrets)
  authzd token revoke ID    revoke a token
  authzd audit verify [--since TIME] [--public-key FILE ...]
                            walk the audit hash chain in the database, check every link and checkpoint,
                            and name the first broken row (exit 1 when broken)
  authzd audit keygen --out FILE
                            make an Ed25519 key for AUTHZ_AUDIT_SIGNING_KEY; prints its public key
  authzd audit rotate-key --new-key FILE
                            hand checkpoint signing over from AUTHZ_AUDIT_SIGNING_KEY to the new key: both
                            sign the chain head into audit_key_rotations; the old key is retired
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
		fmt.Fprint(stdout, usage) // help needs no valid configuration
		return nil
	}
	cfg, err := app.ConfigFromEnv()
	if err != nil {
		return err
	}
	if len(args) == 0 || args[0] == "serve" {
		return serve(ctx, cfg, stderr)
	}
	switch args[0] {
	case "migrate":
		if len(args) > 1 && (args[1] == "--status" || args[1] == "-status") {
			return migrateStatus(ctx, cfg, stdout)
		}
		if err := app.Migrate(ctx, cfg); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "migrations applied")
		return nil
	case "token":
		return token(ctx, cfg, args[1:], stdout)
	case "audit":
		return audit(ctx, cfg, args[1:], stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

func newLogger(cfg app.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // Config.Validate refused anything else
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, cfg app.Config, stderr io.Writer) error {
	logger := newLogger(cfg, stderr)
	if pct, ok := gcPercent(cfg, os.Getenv); ok {
		debug.SetGCPercent(pct)
		logger.Info("garbage collector target set", "AUTHZ_GC_PERCENT", pct)
	} else {
		logger.Info("garbage collector target from GOGC", "GOGC", os.Getenv("GOGC"))
	}
	m := app.New(cfg, logger)
	if err := m.Open(ctx); err != nil {
		return err
	}
	err := untilStopped(ctx, m.Served(), logger)
	if err == nil {
		drain(ctx, m, cfg.ShutdownDrainDelay, logger)
	}
	return errors.Join(err, m.Close(context.Background()))
}

// gcPercent is the garbage collector target serve sets: AUTHZ_GC_PERCENT,
// unless GOGC is set (Go's own variable wins; ok is then false).
func gcPercent(cfg app.Config, getenv func(string) string) (pct int, ok bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return cfg.GCPercent, true
}

// untilStopped waits for a signal (ctx) or for the HTTP server to stop by
// itself, which is a failure: authzd then exits non-zero after the ordered
// shutdown.
func untilStopped(ctx context.Context, served <-chan error, logger *slog.Logger) error {
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
		return nil
	case err := <-served:
		logger.Error("http server stopped", "err", err)
		return fmt.Errorf("http server stopped: %w", err)
	}
}

type scopes []string

func (s *scopes) String() string     { return strings.Join(*s, ",") }
func (s *scopes) Set(v string) error { *s = append(*s, v); return nil }

func token(ctx context.Context, cfg app.Config, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("token: want create, list or revoke\n%s", usage)
	}
	db, err := app.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	switch args[0] {
	case "create":
		fs := flag.NewFlagSet("token create", flag.ContinueOnError)
		name := fs.String("name", "", "token name (who or what uses it)")
		var sc, tenants scopes
		fs.Var(&sc, "scope", "scope to grant; repeat for several: "+strings.Join(authz.Scopes, ", "))
		fs.Var(&tenants, "tenant", "a tenant the token reaches; repeat for several (none: every tenant)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *name == "" {
			return fmt.Errorf("token create: --name is required")
		}
		if err := authz.ValidateScopes(sc); err != nil {
			return err
		}
		if err := authz.ValidateTenants(tenants); err != nil { // no --tenant (nil): every tenant
			return err
		}
		t, secret, err := db.CreateToken(ctx, *name, sc, tenants)
		if err != nil {
			return err
		}
		out := map[string]any{"id": t.ID, "name": t.Name, "scopes": t.Scopes, "token": secret,
			"note": "the token is shown only now; authzd keeps only its hash"}
		if t.Tenants != nil {
			out["tenants"] = t.Tenants
		}
		return enc.Encode(out)
	case "list":
		tokens, err := db.ListTokens(ctx)
		if err != nil {
			return err
		}
		return enc.Encode(tokens)
	case "revoke":
		if len(args) != 2 {
			return fmt.Errorf("token revoke: want exactly one token id")
		}
		if err := db.RevokeToken(ctx, args[1]); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "revoked", args[1])
		return nil
	default:
		return fmt.Errorf("token: unknown command %q\n%s", args[0], usage)
	}
}
