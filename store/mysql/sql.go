package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"time"

	drv "github.com/go-sql-driver/mysql"

	"github.com/wprelay/wprelay/relay"
)

// Server error numbers the store acts on.
const (
	errDupEntry     = 1062 // ER_DUP_ENTRY
	errNoSuchTable  = 1146 // ER_NO_SUCH_TABLE
	errLockWait     = 1205 // ER_LOCK_WAIT_TIMEOUT
	errDeadlock     = 1213 // ER_LOCK_DEADLOCK; also Galera's certification failure
	errRecordChange = 1020 // ER_CHECKREAD (MariaDB: a snapshot read found the row changed)
	errWsrepNotRdy  = 1047 // ER_UNKNOWN_COM_ERROR: Galera node not ready (WSREP has not yet prepared node)
)

// errRetryGroup marks a transaction that saw a row change under it and
// should run again.
var errRetryGroup = errors.New("row changed concurrently")

// maxRetries bounds how often a transaction that lost a deadlock, a lock
// wait or a Galera certification is run again.
const maxRetries = 5

func mysqlErr(err error) (uint16, bool) {
	var me *drv.MySQLError
	if errors.As(err, &me) {
		return me.Number, true
	}
	return 0, false
}

func isNoTable(err error) bool {
	n, ok := mysqlErr(err)
	return ok && n == errNoSuchTable
}

// retryable reports whether running the whole transaction again may
// succeed: the server rolled it back (deadlock, certification) or only
// the statement (lock wait), and we roll back the rest.
func retryable(err error) bool {
	if errors.Is(err, errRetryGroup) {
		return true
	}
	n, ok := mysqlErr(err)
	return ok && (n == errDeadlock || n == errLockWait || n == errRecordChange)
}

// connectionErr reports errors of the connection rather than of a
// statement: the database is unreachable, restarting or not ready.
func connectionErr(err error) bool {
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, drv.ErrInvalidConn) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	if n, ok := mysqlErr(err); ok {
		return n == errWsrepNotRdy
	}
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such file")
}

// unavailable wraps connection errors in relay.ErrUnavailable.
func unavailable(err error) error {
	if err != nil && connectionErr(err) && !errors.Is(err, relay.ErrUnavailable) {
		return fmt.Errorf("%w: %w", relay.ErrUnavailable, err)
	}
	return err
}

// inTx runs fn in a read-committed transaction and commits, running it
// again (up to maxRetries times, after a short jittered pause) when the
// server rolled it back for a deadlock, a lock wait or a Galera
// certification failure. fn must reset whatever it sets outside.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := db.tryTx(ctx, fn)
		if err == nil || !retryable(err) || attempt == maxRetries || ctx.Err() != nil {
			return unavailable(err)
		}
		pause(ctx, attempt)
	}
}

func (db *DB) tryTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// read runs fn in a read-only repeatable-read transaction: one consistent
// view for the statements fn runs.
func (db *DB) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return unavailable(err)
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return unavailable(err)
	}
	return tx.Commit()
}

// pause waits a little before a retry: 2, 4, 8 … ms, jittered.
func pause(ctx context.Context, attempt int) {
	d := time.Duration(1<<attempt) * 2 * time.Millisecond
	d = d/2 + time.Duration(rand.Int64N(int64(d)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// rowsPlaceholders returns n groups of "(?, …)" with width marks each.
func rowsPlaceholders(n, width int) string {
	row := "(" + placeholders(width) + ")"
	return strings.Repeat(row+", ", n-1) + row
}

// stringArgs converts ss to query arguments.
func stringArgs(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// nullTime is t for a nullable column: NULL for the zero time.
func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// timeOf reads a nullable column (zero for NULL).
func timeOf(t sql.NullTime) time.Time {
	if !t.Valid {
		return time.Time{}
	}
	return t.Time.UTC()
}

// minTime is the earliest time a DATETIME column holds for a "zero" that
// must not be NULL.
var minTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// bulk runs multi-row statements "head VALUES (…), (…) tail" with at most
// budget bytes of arguments each.
type bulk struct {
	head, tail string
	width      int
	budget     int
	rows       int
	size       int
	args       []any
	exec       func(query string, args []any) error
}

// add appends one row (width arguments), flushing first when it would not
// fit.
func (b *bulk) add(args ...any) error {
	n := 16
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			n += 2*len(v) + 12
		case string:
			n += 2*len(v) + 4
		default:
			n += 28
		}
	}
	if b.rows > 0 && (b.size+n > b.budget || b.rows == 1000) {
		if err := b.flush(); err != nil {
			return err
		}
	}
	b.args = append(b.args, args...)
	b.rows++
	b.size += n
	return nil
}

func (b *bulk) flush() error {
	if b.rows == 0 {
		return nil
	}
	q := b.head + " VALUES " + rowsPlaceholders(b.rows, b.width) + b.tail
	err := b.exec(q, b.args)
	b.rows, b.size, b.args = 0, 0, b.args[:0]
	return err
}

// shardBlock is the node's block of counter shards: nodes adjust their
// own rows, so that they seldom wait for each other (and, on Galera,
// never fail certification over a counter).
func shardBlock(node string) uint16 {
	h := fnv.New32a()
	h.Write([]byte(node))
	return uint16(h.Sum32()%64) * shardsPerNode
}

const shardsPerNode = 8

// shard picks one of the node's shards for a transaction.
func (db *DB) shard() uint16 { return db.shardHi + uint16(rand.IntN(shardsPerNode)) }
