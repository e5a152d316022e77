// Package migrations embeds wxgate's versioned SQL migrations (goose format).
// The same files run on PostgreSQL and on the embedded SQLite store.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
