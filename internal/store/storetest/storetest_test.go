package storetest

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"
)

// TestAMissingDatabaseSaysCreatedb points the helper at a database the
// running server does not have: the hint is createdb, not "start PostgreSQL".
func TestAMissingDatabaseSaysCreatedb(t *testing.T) {
	base := strings.Replace(PostgresURL(), "/test?", "/wxgate_no_such_db?", 1)
	if base == PostgresURL() {
		t.Skip("WXGATE_TEST_DATABASE_URL is not the default shape; nothing to rewrite")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = db.PingContext(ctx)
	if err == nil {
		t.Fatal("a database that does not exist answered the ping")
	}
	msg := unreachable(base, err)
	if !strings.Contains(msg, "createdb -h 127.0.0.1 -U postgres wxgate_no_such_db") || strings.Contains(msg, "pg_ctlcluster") {
		t.Fatalf("hint = %q, want the createdb command and no start command", msg)
	}
}
