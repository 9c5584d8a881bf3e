package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/tern/v2/migrate"

	"github.com/scailabs/authzd/migrations"
)

// versionTable is tern's record of the applied migrations.
const versionTable = "authzd_schema_version"

// MigrationStatus is the audit database's schema version against the
// migrations this binary knows.
type MigrationStatus struct {
	// Applied is the database's version: the number of the last migration applied.
	Applied int32
	// Known is the number of the last migration this binary holds.
	Known int32
	// Names are the known migrations' file names, in order (Names[i] is number i+1).
	Names []string
}

// Pending are the known migrations the database lacks.
func (s MigrationStatus) Pending() []string {
	if s.Applied >= s.Known {
		return nil
	}
	return s.Names[s.Applied:]
}

// Ahead reports whether a newer release migrated the database further than
// this binary knows. Such a binary serves without migrating: every migration
// keeps the release before it working (CONTRIBUTING.md), and none is undone.
func (s MigrationStatus) Ahead() bool { return s.Applied > s.Known }

// MigrateUp applies the migrations the database lacks and returns the
// status after it. A database ahead of this binary is left as it is.
func MigrateUp(ctx context.Context, url string) (MigrationStatus, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("connect for migrations: %w", err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("prepare migrations: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return MigrationStatus{}, fmt.Errorf("load migrations: %w", err)
	}
	st := MigrationStatus{Known: int32(len(m.Migrations))}
	for _, mig := range m.Migrations {
		st.Names = append(st.Names, mig.Name)
	}
	if st.Applied, err = m.GetCurrentVersion(ctx); err != nil {
		return st, fmt.Errorf("read the schema version: %w", err)
	}
	if st.Ahead() {
		return st, nil
	}
	if err := m.Migrate(ctx); err != nil {
		// A newer replica may have migrated past us since the version was read.
		var bad migrate.BadVersionError
		if v, verr := m.GetCurrentVersion(ctx); errors.As(err, &bad) && verr == nil && v > st.Known {
			st.Applied = v
			return st, nil
		}
		return st, fmt.Errorf("apply migrations: %w", err)
	}
	st.Applied, err = m.GetCurrentVersion(ctx)
	return st, err
}

// ReadMigrationStatus reads the database's schema version without changing
// anything (a database never migrated is at version 0).
func ReadMigrationStatus(ctx context.Context, url string) (MigrationStatus, error) {
	names, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil {
		return MigrationStatus{}, err
	}
	slices.Sort(names)
	st := MigrationStatus{Known: int32(len(names)), Names: names}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return st, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return st, err
	}
	if exists {
		if err := conn.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&st.Applied); err != nil {
			return st, fmt.Errorf("read the schema version: %w", err)
		}
	}
	return st, nil
}
