package store_test

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
	"github.com/wxgate/wxgate/internal/journey"
	"github.com/wxgate/wxgate/internal/store"
	"github.com/wxgate/wxgate/internal/store/storetest"
)

// TestUnreachableStoreIsStoreUnavailable: a store that refuses
// connections, and a pool exhausted until the caller's deadline or the
// store's operation timeout, answer store_unavailable (the 503 clients retry), while the store's own refusals
// (not found) and a caller that went away keep their meaning.
func TestUnreachableStoreIsStoreUnavailable(t *testing.T) {
	t.Parallel()
	const comp = "wx00000000000000c1"
	dbURL := storetest.NewURL(t, store.Postgres)
	cutURL, link := storetest.Behind(t, dbURL)
	ctx := context.Background()
	storetest.OpenURL(t, dbURL, nil) // migrated
	const opTimeout = 300 * time.Millisecond
	st, err := store.Open(ctx, cutURL, store.Options{Box: storetest.Box(t), MaxOpenConns: 2, OpTimeout: opTimeout, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	tn, err := st.CreateTenant(ctx, comp, "acme")
	if err != nil {
		t.Fatal(err)
	}
	want := func(t *testing.T, what string, err error) {
		t.Helper()
		if !errs.Is(err, errs.StoreUnavailable) || !store.Unavailable(err) {
			t.Fatalf("%s: got %v, want store_unavailable", what, err)
		}
	}

	journey.Step(t, "the store's own answers are not outages", func(t *testing.T) {
		_, err := st.GetTenant(ctx, "tn_nobody")
		if !errs.Is(err, errs.NotFound) || store.Unavailable(err) {
			t.Fatalf("an unknown tenant: got %v, want not_found", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := st.GetTenant(cctx, tn.ID); store.Unavailable(err) {
			t.Fatalf("a caller that went away: got %v, want no outage", err)
		}
	})

	journey.Step(t, "pool exhausted until the deadline", func(t *testing.T) {
		release := make(chan struct{})
		held := make(chan struct{}, 2)
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				_, _ = st.UpdateTenant(ctx, tn.ID, func(*store.Tenant) error {
					held <- struct{}{}
					<-release
					return nil
				})
			})
		}
		<-held
		<-held
		dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := st.GetTenant(dctx, tn.ID)
		cancel()
		close(release)
		wg.Wait()
		want(t, "a query with every connection held", err)
	})

	journey.Step(t, "a store that stops answering, for a caller without a deadline", func(t *testing.T) {
		// Another client holds the tenant's row: the update waits in the
		// database until the store's operation timeout ends it.
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = tx.Rollback() }()
		if _, err := tx.ExecContext(ctx, "SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE", tn.ID); err != nil {
			t.Fatal(err)
		}
		began := time.Now()
		_, err = st.UpdateTenant(ctx, tn.ID, func(x *store.Tenant) error { x.RateBurst = 7; return nil })
		waited := time.Since(began)
		want(t, "an update held up in the database", err)
		if waited < opTimeout || waited > 10*opTimeout {
			t.Fatalf("the caller waited %v, want about the operation timeout %v", waited, opTimeout)
		}
	})

	journey.Step(t, "connection refused", func(t *testing.T) {
		link.Cut()
		_, err := st.GetTenant(ctx, tn.ID)
		want(t, "a read", err)
		_, err = st.CreateTenant(ctx, comp, "globex")
		want(t, "a write in a transaction", err)
		_, err = st.Revision(ctx, "tenants")
		want(t, "the revision", err)
		if e := errs.As(err); e == nil || e.Message != "the gateway cannot reach its store; retry later" {
			t.Fatalf("the message: got %v, want the client-safe sentence", err)
		}
	})

	journey.Step(t, "back", func(t *testing.T) {
		if err := link.Restore(); err != nil {
			t.Fatal(err)
		}
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err = st.GetTenant(ctx, tn.ID); err == nil {
				return
			}
		}
		t.Fatalf("the store after the link's return: %v", errors.Unwrap(err))
	})
}
