package consumer

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// ClassifyPostgres returns err as [Unavailable]("postgresql", err) when it
// says the database could not be reached or is not serving (a refused or
// broken connection, a server shutting down or starting, too many
// connections, SQLSTATE classes 08 and 53), and err unchanged otherwise (a
// constraint violation, a bad query: errors of the event or the code). nil
// stays nil.
func ClassifyPostgres(err error) error {
	if err == nil || !postgresUnavailable(err) {
		return err
	}
	return Unavailable(DependencyPostgres, err)
}

func postgresUnavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources (too many connections, disk full)
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin/crash shutdown, cannot connect now
			pe.Code == "58000", pe.Code == "58030": // system, I/O error
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// The handler's own deadline or a shutdown, not the database's
		// answer (context.DeadlineExceeded is also a net.Error).
		return false
	}
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "conn closed") || strings.Contains(err.Error(), "failed to connect")
}
