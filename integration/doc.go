// Package integration is authzd's end-to-end suite. It starts a world (Postgres
// and SpiceDB, in Docker containers when a Docker engine answers, otherwise a
// local Postgres and the embedded or a locally built SpiceDB), runs authzd in it
// through the app's own constructor or as a child process, and drives it over
// HTTP the way real callers do. See docs/integration.md.
//
// The package holds only tests: `go test ./integration/...`.
package integration
