package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/wprelay/wprelay/relay"
)

var _ relay.Counters = (*DB)(nil)

// Add adds n to the counter name and returns its new value, committed
// durably and shared by every node; n = 0 reads it (without a write, and
// without touching its expiry). Prune may forget the counter once expires
// has passed (the latest expires given wins).
func (db *DB) Add(ctx context.Context, name string, n int, expires time.Time) (int, error) {
	if err := checkName("counter name", name, maxName, true); err != nil {
		return 0, fmt.Errorf("counter: %w", err)
	}
	var total int64
	read := func(q interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}) error {
		err := q.QueryRowContext(ctx, db.t.expand("SELECT n FROM {counters} WHERE name = ?"), name).Scan(&total)
		if errors.Is(err, sql.ErrNoRows) {
			total = 0
			return nil
		}
		return err
	}
	var err error
	if n == 0 {
		err = unavailable(read(db.sql))
	} else {
		exp := expires.UTC()
		if exp.Before(minTime) {
			exp = minTime
		}
		err = db.inTx(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, db.t.expand(`INSERT INTO {counters} (name, n, expires_at) VALUES (?, ?, ?)
				ON DUPLICATE KEY UPDATE n = n + VALUES(n), expires_at = GREATEST(expires_at, VALUES(expires_at))`), name, n, exp)
			if err != nil {
				return err
			}
			return read(tx)
		})
	}
	if err != nil {
		return 0, fmt.Errorf("counter %s: %w", name, err)
	}
	return int(total), nil
}
