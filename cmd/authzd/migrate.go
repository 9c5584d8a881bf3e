package main

import (
	"context"
	"fmt"
	"io"

	"github.com/scailabs/authzd/cmd/authzd/app"
	"github.com/scailabs/authzd/internal/postgres"
)

// migrateStatus prints each known migration as applied or pending, and
// fails when any is pending; it changes nothing.
func migrateStatus(ctx context.Context, cfg app.Config, stdout io.Writer) error {
	st, err := postgres.ReadMigrationStatus(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	for i, name := range st.Names {
		state := "applied"
		if int32(i) >= st.Applied {
			state = "pending"
		}
		fmt.Fprintf(stdout, "%-8s %s\n", state, name)
	}
	fmt.Fprintf(stdout, "database version %d, this binary knows %d\n", st.Applied, st.Known)
	if st.Ahead() {
		fmt.Fprintf(stdout, "the database is ahead: a newer release migrated it; this binary serves it without migrating\n")
	}
	if p := st.Pending(); len(p) > 0 {
		return fmt.Errorf("%d migration(s) pending: run `authzd migrate` (authzd also migrates at start)", len(p))
	}
	return nil
}
