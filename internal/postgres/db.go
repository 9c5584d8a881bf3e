// Package postgres is authzd's adapter to Postgres: the audit log, the API
// tokens, and the migrations that shape them.
package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scailabs/authzd/internal/authz"
)

// SQLSTATE codes authzd acts on.
const (
	sqlstateDuplicateDatabase = "42P04"
	sqlstateInvalidCatalog    = "3D000"
	sqlstateUniqueViolation   = "23505"
	sqlstateCheckViolation    = "23514"
)

// DB is the Postgres connection pool.
type DB struct {
	Pool *pgxpool.Pool
	// Notices are what Open found wrong with the server's durability and
	// either fixed for authzd's connections or could not fix; the caller logs
	// them.
	Notices []string
}

// Open connects to the database at url, creating the database first when it
// is missing and the role may create it.
func Open(ctx context.Context, url string, maxConns int32) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if err := EnsureDatabase(ctx, url); err != nil {
		return nil, err
	}
	notices, err := ensureDurable(ctx, cfg)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return &DB{Pool: pool, Notices: notices}, nil
}

// ensureDurable keeps the promise that a decision is answered only once its
// audit row is durable, which holds only while a commit waits for its WAL
// flush. synchronous_commit = off (for the server, the database, the role or
// in the URL) breaks that silently: authzd then sets it on for the pool's
// connections (cfg), which overrides all of those. Any other mode (on, local,
// remote_write, remote_apply) flushes locally and is kept as configured.
// fsync = off cannot be overridden by a client: it is reported.
func ensureDurable(ctx context.Context, cfg *pgxpool.Config) ([]string, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg.ConnConfig)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	defer conn.Close(ctx)
	var syncCommit, fsync string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), current_setting('fsync')").
		Scan(&syncCommit, &fsync); err != nil {
		return nil, fmt.Errorf("read the audit database's durability settings: %w", err)
	}
	var notices []string
	if syncCommit == "off" {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
		notices = append(notices, "synchronous_commit is off for authzd's audit database (server, database, role or URL);"+
			" authzd sets it on for its own connections, so that no decision is answered before its audit row is durable")
	}
	if fsync == "off" {
		notices = append(notices, "the audit database's server runs with fsync = off: a crash of that server can lose"+
			" the audit rows of decisions already answered; authzd cannot override it")
	}
	return notices, nil
}

// Close closes the pool.
func (db *DB) Close() { db.Pool.Close() }

// Ping reports whether Postgres answers.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.Pool.Ping(ctx); err != nil {
		return authz.Wrap(authz.EUNAVAILABLE, err, "the audit database is unavailable")
	}
	return nil
}

// EnsureDatabase creates the database named in url when it does not exist,
// connecting to the server's "postgres" database to do so.
func EnsureDatabase(ctx context.Context, url string) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("parse database url: %w", err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != sqlstateInvalidCatalog {
		return fmt.Errorf("connect to postgres %s:%d: %w", cfg.Host, cfg.Port, err)
	}
	name := cfg.Database
	admin := cfg.Copy()
	admin.Database = "postgres"
	aconn, err := pgx.ConnectConfig(ctx, admin)
	if err != nil {
		return fmt.Errorf("database %q is missing and the server's postgres database is unreachable to create it: %w", name, err)
	}
	defer aconn.Close(ctx)
	if _, err := aconn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		if errors.As(err, &pgErr) && pgErr.Code == sqlstateDuplicateDatabase {
			return nil // created concurrently
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Migrate applies every pending migration, each in its own transaction; a
// database a newer release migrated further is left as it is (MigrateUp).
func Migrate(ctx context.Context, url string) error {
	_, err := MigrateUp(ctx, url)
	return err
}
