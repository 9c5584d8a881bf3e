// Package migrations holds authzd's numbered Postgres migrations, applied by
// tern at start and by `authzd migrate`.
package migrations

import "embed"

// FS holds the migration files, named NNN_description.sql.
//
//go:embed *.sql
var FS embed.FS
