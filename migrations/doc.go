// Package migrations holds the database schema of ATİS Scheduler and applies it.
//
// The SQL files under sql/ are embedded in the binary and applied in order by
// goose: first minimal stand-ins for tables owned by the ATİS web app, then the
// two seed documents exactly as written (only IF NOT EXISTS added, so an
// existing ATİS database keeps its tables), then our own additions in separate
// migrations. River's tables follow through rivermigrate. Everything runs under
// one PostgreSQL advisory lock, so any number of replicas may migrate at once.
package migrations
