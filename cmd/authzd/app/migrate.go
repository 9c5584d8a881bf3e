package app

import (
	"context"

	"github.com/scailabs/authzd/internal/postgres"
)

// migrate brings the audit database up to this binary's migrations. A
// database a newer release migrated further is served as it is, never
// migrated down: during a rolling upgrade (or a rollback) the previous
// release keeps running beside the next.
func (m *Main) migrate(ctx context.Context) error {
	st, err := postgres.MigrateUp(ctx, m.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if st.Ahead() {
		m.logger.Warn("the audit database is migrated further than this binary knows; serving without migrating "+
			"(a newer release is rolling out, or this is a rollback)", "database_version", st.Applied, "binary_version", st.Known)
		return nil
	}
	m.logger.Info("audit database schema", "database_version", st.Applied, "binary_version", st.Known)
	return nil
}
