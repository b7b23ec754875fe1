// Package mysql keeps wprelay's events, deliveries and dedupe records in a
// MariaDB (10.6 or later) or MySQL (8.0 or later) database, so that several
// sidecars share one queue. *DB implements relay.Queue, admin.Store and
// relay.Pruner and passes relaytest.TestStore, like the bbolt store.
//
// Its tables carry their own prefix (Options.TablePrefix, default
// "wprelay_"), so they may live in the WordPress database; Open applies the
// versioned schema migrations first (see Migrate).
//
// Semantics with several sidecars on one database:
//
//   - Dedupe: idempotency keys are the primary key of their table (a
//     SHA-256 of the key, so that no collation can fold two keys into one).
//     A key sent to two nodes at once is stored once: the second insert
//     waits for the first transaction and then sees its row, so it answers
//     a duplicate with the first event's id, or a conflict when the body
//     hash differs.
//   - Replay cache: a batch's nonce (a JWT jti) is the primary key of the
//     nonces table, so a token replayed to any node is refused.
//   - Claims: due deliveries are picked with SELECT … FOR UPDATE SKIP
//     LOCKED (oldest due first), so nodes claiming at the same time take
//     different rows, and leased: an in-flight delivery's due time is the
//     end of its lease, after which any node claims it again.
//   - Fencing: each claim increments the delivery's claims counter. The
//     node keeps the value it set (in memory, by event and target) and
//     Complete applies only while the row still holds it, so a node whose
//     lease ran out and was taken over cannot overwrite the new holder's
//     outcome: its Complete is relay.ErrNotFound. relay.Job and
//     relay.Result are unchanged.
//   - Group commit: concurrent Enqueue calls on one node share one
//     transaction (see commit.go); a call that fails does not fail its
//     neighbours.
//   - Pruning deletes at most max rows per call in short transactions and
//     skips rows another node is pruning.
//   - Ordering by subject (relay.Order): a subject's queue is changed only
//     under its row lock in the subjects table, so nodes hand out one
//     delivery of a subject at a time, in order (see order.go).
//   - Named counters (relay.Counters, a target's daily budget) are rows
//     shared by every node.
//
// Counts by status (Stats, Pending) are kept in a small stats table that
// every transaction adjusts, spread over shards per node so that nodes
// never touch the same row.
//
// # Caveats
//
// Leases compare times from the nodes' clocks: keep them synchronised (NTP).
// A node that restarts does not release the leases of the process it
// replaces; they run out (deliver: 3× the target timeout + 30 s). On
// Galera, SKIP LOCKED sees only the local node's locks: two nodes writing
// through different Galera nodes may claim the same row, and one of them
// then fails certification at commit (error 1213), which every write
// retries; point every sidecar at one writer node to avoid the churn.
// MariaDB Galera refuses GET_LOCK, so migrations run unlocked there (they
// are idempotent). Completing a
// delivery claimed by another process (or before a restart) is refused:
// only the claimer completes.
package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	drv "github.com/go-sql-driver/mysql"

	"github.com/wprelay/wprelay/relay"
)

// DefaultTablePrefix prefixes every table name unless Options say otherwise.
const DefaultTablePrefix = "wprelay_"

// DefaultMaxConns bounds the connections one node opens.
const DefaultMaxConns = 16

// Options configure a DB. Only DSN is required.
type Options struct {
	// DSN is a go-sql-driver/mysql data source name, e.g.
	// "wprelay:secret@tcp(db.internal:3306)/wordpress?tls=true". Open sets
	// parseTime, UTC, client-side interpolation, READ COMMITTED and a UTC
	// session time zone itself.
	DSN string
	// TablePrefix prefixes the tables: letters, digits and _, at most 32.
	// Default "wprelay_".
	TablePrefix string
	// MaxConns bounds the node's open connections. Default 16.
	MaxConns int
	// Committers is how many Enqueue groups may commit at once. Default 2.
	Committers int
	// Node names this process in the claimed_by column (for operators).
	// Default hostname:pid.
	Node string
	// PendingTTL lets Pending answer from a count at most this old (the
	// ingest path asks on every request). Default 0: always exact.
	PendingTTL time.Duration
	// NoMigrate makes Open refuse a schema that is not up to date instead
	// of migrating it (when migrations are run by `wprelay migrate`).
	NoMigrate bool
	// Logger receives the store's few log lines. Default: discarded.
	Logger *slog.Logger
	// Sealer, when set, encrypts raw bodies and envelopes at rest. Open
	// fails with ErrWrongKey when its keys cannot open the store.
	Sealer *Sealer
	// OnCommit, when set, is told the size and duration of every group
	// commit of Enqueue calls (for metrics). Keep it cheap.
	OnCommit func(ops int, took time.Duration)
}

// DB is a wprelay store in a MariaDB or MySQL database.
type DB struct {
	// Now is the clock used where a caller passes no time (a dead delivery
	// whose attempt has no time). Default: time.Now.
	Now func() time.Time

	sql     *sql.DB
	t       tables
	node    string
	log     *slog.Logger
	sealer  *Sealer
	commit  *committer
	server  string // version string
	packet  int    // bytes of arguments per multi-row statement
	shardHi uint16 // this node's counter shard block

	claimsMu sync.Mutex
	claims   map[claimKey]claim // fencing tokens of this node's claims

	pendingTTL time.Duration
	pendingMu  sync.Mutex
	pendingAt  time.Time
	pendingN   int

	sizeMu sync.Mutex
	sizeAt time.Time
	sizeN  int64

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool
}

var (
	_ relay.Queue  = (*DB)(nil)
	_ relay.Pruner = (*DB)(nil)
)

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{0,32}$`)

// Open connects, checks the server (MariaDB ≥ 10.6 or MySQL ≥ 8.0),
// applies the schema migrations (unless o.NoMigrate) and starts the commit
// loops.
func Open(ctx context.Context, o Options) (*DB, error) {
	if o.TablePrefix == "" {
		o.TablePrefix = DefaultTablePrefix
	}
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Committers <= 0 {
		o.Committers = 2
	}
	if o.Node == "" {
		host, _ := os.Hostname()
		o.Node = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if len(o.Node) > 191 {
		o.Node = o.Node[:191]
	}
	db := &DB{Now: time.Now, node: o.Node, log: o.Logger, sealer: o.Sealer, claims: map[claimKey]claim{},
		pendingTTL: o.PendingTTL, shardHi: shardBlock(o.Node)}
	if db.log == nil {
		db.log = slog.New(slog.DiscardHandler)
	}
	var err error
	if db.sql, db.server, db.packet, err = connect(ctx, o); err != nil {
		return nil, err
	}
	db.t = newTables(o.TablePrefix)
	fail := func(err error) (*DB, error) {
		db.sql.Close()
		return nil, err
	}
	if o.NoMigrate {
		if err := db.checkSchema(ctx); err != nil {
			return fail(err)
		}
	} else if _, err := migrate(ctx, db.sql, db.t, db.node, false); err != nil {
		return fail(err)
	}
	if err := db.checkSealer(ctx); err != nil {
		return fail(err)
	}
	db.commit = newCommitter(db, o.Committers, o.OnCommit)
	db.log.Info("store opened", slog.String(relay.LogKeyServer, db.server), slog.String(relay.LogKeyTablePrefix, o.TablePrefix),
		slog.String(relay.LogKeyNode, db.node), slog.Int(relay.LogKeyMaxConns, o.MaxConns))
	return db, nil
}

// connect opens the pool with the session settings the store relies on.
// It returns the server version and the statement size budget.
func connect(ctx context.Context, o Options) (*sql.DB, string, int, error) {
	if o.DSN == "" {
		return nil, "", 0, errors.New("mysql: no DSN")
	}
	if !prefixRE.MatchString(o.TablePrefix) {
		return nil, "", 0, fmt.Errorf("mysql: table prefix %q: use letters, digits and _ (at most 32)", o.TablePrefix)
	}
	cfg, err := drv.ParseDSN(o.DSN)
	if err != nil {
		return nil, "", 0, fmt.Errorf("mysql: dsn: %w", err)
	}
	if cfg.DBName == "" {
		return nil, "", 0, errors.New("mysql: the DSN names no database (…/dbname)")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.InterpolateParams = true // one round trip per statement
	cfg.RejectReadOnly = true    // a failed-over primary that is now read-only: reconnect
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	probe, err := open(cfg, 1)
	if err != nil {
		return nil, "", 0, err
	}
	defer probe.Close()
	var version string
	var packet int64
	if err := probe.QueryRowContext(ctx, "SELECT VERSION(), @@max_allowed_packet").Scan(&version, &packet); err != nil {
		return nil, "", 0, fmt.Errorf("mysql: connect to %s: %w", cfg.Addr, err)
	}
	if err := checkVersion(version); err != nil {
		return nil, "", 0, err
	}
	// READ COMMITTED writes cannot be logged as statements.
	var logBin int
	var format string
	if probe.QueryRowContext(ctx, "SELECT @@log_bin, @@binlog_format").Scan(&logBin, &format) == nil && logBin == 1 && strings.EqualFold(format, "STATEMENT") {
		return nil, "", 0, fmt.Errorf("mysql: server %s logs binlog_format=STATEMENT: set it to ROW or MIXED (the defaults); InnoDB cannot log READ COMMITTED writes as statements", version)
	}
	// The session's isolation: READ COMMITTED (no gap locks between
	// claimers; locking reads see the latest committed rows). MySQL 8 and
	// MariaDB 11.1+ call the variable transaction_isolation; older MariaDB
	// tx_isolation.
	iso := "transaction_isolation"
	var s string
	if probe.QueryRowContext(ctx, "SELECT @@transaction_isolation").Scan(&s) != nil {
		iso = "tx_isolation"
	}
	cfg.Params[iso] = "'READ-COMMITTED'"
	db, err := open(cfg, o.MaxConns)
	if err != nil {
		return nil, "", 0, err
	}
	budget := int(min(packet, int64(cfg.MaxAllowedPacket))) - 64<<10
	return db, version, max(budget, 256<<10), nil
}

func open(cfg *drv.Config, conns int) (*sql.DB, error) {
	c, err := drv.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(c)
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(30 * time.Minute) // managed services cut idle connections
	db.SetConnMaxIdleTime(5 * time.Minute)
	return db, nil
}

// checkVersion refuses servers without SKIP LOCKED.
func checkVersion(v string) error {
	var major, minor int
	fmt.Sscanf(v, "%d.%d", &major, &minor)
	maria := strings.Contains(strings.ToLower(v), "mariadb")
	switch {
	case maria && (major > 10 || major == 10 && minor >= 6):
	case !maria && major >= 8:
	default:
		return fmt.Errorf("mysql: server %s: wprelay needs MariaDB 10.6 or later, or MySQL 8.0 or later (SELECT … FOR UPDATE SKIP LOCKED)", v)
	}
	return nil
}

// Close waits for the group commits under way, stops the commit loops and
// closes the pool. Calling it again does nothing.
func (db *DB) Close() error {
	db.closeOnce.Do(func() {
		db.closed.Store(true)
		db.commit.close()
		if err := db.sql.Close(); err != nil {
			db.closeErr = fmt.Errorf("close: %w", err)
		}
	})
	return db.closeErr
}

// Node is the name this process writes in claimed_by.
func (db *DB) Node() string { return db.node }

// Server is the server's version string.
func (db *DB) Server() string { return db.server }

// Size returns the bytes the store's tables take (data and indexes, as
// information_schema estimates them), refreshed at most every 30 s.
func (db *DB) Size() int64 {
	db.sizeMu.Lock()
	defer db.sizeMu.Unlock()
	if time.Since(db.sizeAt) < 30*time.Second {
		return db.sizeN
	}
	names := db.t.all()
	q := "SELECT COALESCE(SUM(data_length + index_length), 0) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN (" + placeholders(len(names)) + ")"
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int64
	if err := db.sql.QueryRowContext(ctx, q, args...).Scan(&n); err == nil {
		db.sizeN, db.sizeAt = n, time.Now()
	}
	return db.sizeN
}

// CommitStats reports how many group commits Enqueue made and how many
// Enqueue calls went through them: calls > commits under load.
func (db *DB) CommitStats() (commits, ops uint64) {
	return db.commit.commits.Load(), db.commit.nops.Load()
}
