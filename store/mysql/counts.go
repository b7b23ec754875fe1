package mysql

import (
	"context"
	"database/sql"
	"slices"
	"strings"

	"github.com/wprelay/wprelay/relay"
)

// counts collects one transaction's changes to the counts by status (the
// stats table).
type counts map[string]int64

// add adds n to the count of kind ("event" or "delivery") in status.
func (c counts) add(kind, status string, n int64) {
	if status != "" && n != 0 {
		c[kind+"/"+status] += n
	}
}

// move counts one record of kind leaving status from for status to.
func (c counts) move(kind, from, to string) {
	if from != to {
		c.add(kind, from, -1)
		c.add(kind, to, 1)
	}
}

// flush writes the changes into one of the node's shards, in key order
// (so that concurrent transactions lock counter rows in the same order).
func (db *DB) flushCounts(ctx context.Context, tx *sql.Tx, c counts) error {
	keys := make([]string, 0, len(c))
	for k, n := range c {
		if n != 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	shard := db.shard()
	args := make([]any, 0, 4*len(keys))
	for _, k := range keys {
		kind, status, _ := strings.Cut(k, "/")
		args = append(args, kind, status, shard, c[k])
	}
	_, err := tx.ExecContext(ctx, db.t.expand("INSERT INTO {stats} (kind, status, shard, n) VALUES ")+
		rowsPlaceholders(len(keys), 4)+" ON DUPLICATE KEY UPDATE n = n + VALUES(n)", args...)
	clear(c)
	return err
}

// notFinal are the delivery statuses Pending counts.
var notFinal = []string{relay.DeliveryPending, relay.DeliveryInFlight, relay.DeliveryRetrying}
