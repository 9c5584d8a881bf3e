// Package integration is authzd's end-to-end suite. It starts a world (Postgres
// and SpiceDB, in Docker containers when a Docker engine answers, otherwise a
// local Postgres and the embedded or a locally built SpiceDB), runs authzd in it
// through the app's own constructor or as a child process, and drives it over
// HTTP the way real callers do. See docs/integration.md.
//
// Each scenario writes its provisioning and its checks out in full, even where
// two scenarios begin alike (a partner, a tenant, a role, members) or race the
// same way on different objects: a reader sees the whole state a test asserts
// without following helpers. The mechanics are shared (startApp, the api
// client, reconcile, runLoad, cutUnderLoad); the stories are not.
//
// The package holds only tests: `go test ./integration/...`.
package integration
