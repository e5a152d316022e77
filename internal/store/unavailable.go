package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/wxgate/wxgate/internal/errs"
)

// Unavailable reports whether err means the store could not be reached,
// rather than that it refused the statement: the connection was refused,
// reset or closed, a connection or statement timed out (a pool exhausted
// until the caller's deadline is one), or the server is shutting down or
// out of connections. Such failures are store_unavailable (503, retry
// later); anything else the store says is the caller's or wxgate's problem.
// A caller that went away (context.Canceled) is not an outage.
func Unavailable(err error) bool {
	if err == nil {
		return false
	}
	if e := errs.As(err); e != nil && e.Code == errs.StoreUnavailable {
		return true
	}
	var (
		connect *pgconn.ConnectError
		netErr  net.Error
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err),
		errors.As(err, &connect), errors.As(err, &netErr),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	}
	switch state := sqlState(err); {
	case strings.HasPrefix(state, "08"): // connection exception
		return true
	case state == "53300", state == "57P01", state == "57P02", state == "57P03":
		// too many connections; admin, crash or startup shutdown.
		return true
	}
	// The embedded store: another process holds the write lock past the
	// busy timeout.
	return strings.Contains(err.Error(), "database is locked") || strings.Contains(err.Error(), "SQLITE_BUSY")
}

// errUnavailable is the domain error of a statement that could not reach
// the store; what names the entity for the log.
func errUnavailable(err error, what string) error {
	return errs.Wrap(errs.StoreUnavailable, "the gateway cannot reach its store; retry later", fmt.Errorf("store: %s: %w", what, err))
}
