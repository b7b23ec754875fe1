package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// tables holds the prefixed table names.
type tables struct {
	prefix     string
	migrations string
	meta       string
	events     string
	bodies     string
	deliveries string
	keys       string
	nonces     string
	stats      string
	subjects   string
	counters   string
	rawrefs    string
}

func newTables(prefix string) tables {
	return tables{
		prefix:     prefix,
		migrations: prefix + "migrations",
		meta:       prefix + "meta",
		events:     prefix + "events",
		bodies:     prefix + "bodies",
		deliveries: prefix + "deliveries",
		keys:       prefix + "idempotency_keys",
		nonces:     prefix + "nonces",
		stats:      prefix + "stats",
		subjects:   prefix + "subjects",
		counters:   prefix + "counters",
		rawrefs:    prefix + "rawrefs",
	}
}

func (t tables) all() []string {
	return []string{t.migrations, t.meta, t.events, t.bodies, t.deliveries, t.keys, t.nonces, t.stats, t.subjects, t.counters, t.rawrefs}
}

// expand replaces {name} with the prefixed table name.
func (t tables) expand(q string) string {
	return strings.NewReplacer(
		"{migrations}", t.migrations, "{meta}", t.meta, "{events}", t.events, "{bodies}", t.bodies,
		"{deliveries}", t.deliveries, "{keys}", t.keys, "{nonces}", t.nonces, "{stats}", t.stats,
		"{subjects}", t.subjects, "{counters}", t.counters, "{rawrefs}", t.rawrefs,
	).Replace(q)
}

// tableOptions ends every CREATE TABLE: InnoDB, and binary collation so that
// names and filters compare byte for byte, as in the bbolt store.
const tableOptions = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin ROW_FORMAT=DYNAMIC"

// migration is one schema version. Its statements must be safe to run
// again (IF NOT EXISTS), because DDL commits on its own: a node that stops
// half-way through, or two nodes on Galera (where GET_LOCK is local),
// may run a step twice.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations is the schema's history. Append; never edit a released step.
//
// Times are DATETIME(6) in UTC (NULL for none). A delivery's due_at is its
// position in the claim order: next_at while pending or retrying, the end
// of the lease while in flight, NULL once final or while parked behind an
// earlier delivery of its subject (order_key; queued while not final);
// claims is its fencing token. Idempotency keys and nonces are stored as
// SHA-256 hashes. stats holds the counts by status (sharded per node),
// subjects one row per ordered (target, subject): the lock of its queue
// and the newest event delivered; counters the named counters.
var migrations = []migration{
	{1, "events, bodies, deliveries, idempotency keys, nonces, stats, subjects, counters", []string{
		`CREATE TABLE IF NOT EXISTS {meta} (
			name VARCHAR(64) NOT NULL PRIMARY KEY,
			value BLOB NOT NULL
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {events} (
			id VARCHAR(64) NOT NULL,
			source VARCHAR(191) NOT NULL,
			tenant VARCHAR(191) NOT NULL DEFAULT '',
			type VARCHAR(255) NOT NULL DEFAULT '',
			idempotency_key TEXT NOT NULL,
			status VARCHAR(16) NOT NULL,
			received_at DATETIME(6) NOT NULL,
			occurred_at DATETIME(6) NULL,
			causation_id VARCHAR(64) NULL,
			traceparent VARCHAR(255) NOT NULL DEFAULT '',
			PRIMARY KEY (id),
			KEY by_time (received_at, id),
			KEY by_status (status, received_at, id),
			KEY by_source (source, received_at, id),
			KEY by_tenant (tenant, received_at, id),
			KEY by_type (type, received_at, id),
			KEY by_causation (causation_id, received_at, id)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {bodies} (
			event_id VARCHAR(64) NOT NULL PRIMARY KEY,
			envelope LONGBLOB NOT NULL,
			raw LONGBLOB NULL
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {deliveries} (
			event_id VARCHAR(64) NOT NULL,
			target VARCHAR(191) NOT NULL,
			source VARCHAR(191) NOT NULL,
			status VARCHAR(16) NOT NULL,
			mirror TINYINT(1) NOT NULL DEFAULT 0,
			attempts INT NOT NULL DEFAULT 0,
			tries INT NOT NULL DEFAULT 0,
			since DATETIME(6) NOT NULL,
			created_at DATETIME(6) NOT NULL,
			next_at DATETIME(6) NULL,
			due_at DATETIME(6) NULL,
			claims INT UNSIGNED NOT NULL DEFAULT 0,
			claimed_by VARCHAR(191) NULL,
			last_status INT NOT NULL DEFAULT 0,
			last_error TEXT NULL,
			dead_at DATETIME(6) NULL,
			reason TEXT NULL,
			history MEDIUMBLOB NULL,
			request LONGBLOB NULL,
			result_id VARCHAR(64) NULL,
			order_key VARCHAR(255) NULL,
			order_flags TINYINT UNSIGNED NOT NULL DEFAULT 0,
			order_at DATETIME(6) NULL,
			queued TINYINT(1) NOT NULL DEFAULT 0,
			parked TINYINT(1) NOT NULL DEFAULT 0,
			out_of_order TINYINT(1) NOT NULL DEFAULT 0,
			PRIMARY KEY (event_id, target),
			KEY due (target, due_at),
			KEY waiting (status, due_at),
			KEY dead (dead_at),
			KEY subject (target, order_key, queued, order_at, event_id)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {keys} (
			key_hash BINARY(32) NOT NULL PRIMARY KEY,
			idem_key TEXT NOT NULL,
			body_hash BINARY(32) NOT NULL,
			event_id VARCHAR(64) NOT NULL,
			expires_at DATETIME(6) NULL,
			KEY expiry (expires_at)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {nonces} (
			nonce_hash BINARY(32) NOT NULL PRIMARY KEY,
			token BINARY(16) NOT NULL,
			expires_at DATETIME(6) NOT NULL,
			KEY expiry (expires_at)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {stats} (
			kind VARCHAR(16) NOT NULL,
			status VARCHAR(16) NOT NULL,
			shard SMALLINT UNSIGNED NOT NULL,
			n BIGINT NOT NULL,
			PRIMARY KEY (kind, status, shard)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {subjects} (
			target VARCHAR(191) NOT NULL,
			order_key VARCHAR(255) NOT NULL,
			last_at DATETIME(6) NULL,
			last_id VARCHAR(64) NULL,
			PRIMARY KEY (target, order_key),
			KEY last (last_id)
		)` + tableOptions,
		`CREATE TABLE IF NOT EXISTS {counters} (
			name VARCHAR(191) NOT NULL PRIMARY KEY,
			n BIGINT NOT NULL,
			expires_at DATETIME(6) NOT NULL,
			KEY expiry (expires_at)
		)` + tableOptions,
	}},
	// The events of one request (a HubSpot batch) share its raw request,
	// stored once in the bodies row of the first (its owner); the others'
	// raw is NULL and their row here names the owner, which prune keeps
	// while one remains.
	{2, "raw requests shared by the events of one request", []string{
		`CREATE TABLE IF NOT EXISTS {rawrefs} (
			event_id VARCHAR(64) NOT NULL PRIMARY KEY,
			owner_id VARCHAR(64) NOT NULL,
			KEY by_owner (owner_id)
		)` + tableOptions,
	}},
}

// SchemaVersion is the schema version this code reads and writes.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// Step is one migration as Migrate reports it.
type Step struct {
	Version   int
	Name      string
	AppliedAt time.Time // zero for a step not applied
	AppliedBy string
}

// Report says what Migrate found and did.
type Report struct {
	From, To int    // schema version before and after
	Applied  []Step // the steps this call applied (or would, in a dry run)
	History  []Step // every step the database has recorded, after the call
	Server   string
	Locked   bool // the advisory lock was held (not on Galera)
}

// Migrate brings the schema of the tables with o.TablePrefix up to date,
// or with dryRun only reports what it would apply. Open does the same
// before serving; `wprelay migrate` runs it alone. An advisory lock
// (GET_LOCK) keeps two nodes from migrating at once.
func Migrate(ctx context.Context, o Options, dryRun bool) (Report, error) {
	if o.TablePrefix == "" {
		o.TablePrefix = DefaultTablePrefix
	}
	db, server, _, err := connect(ctx, o)
	if err != nil {
		return Report{}, err
	}
	defer db.Close()
	node := o.Node
	if node == "" {
		host, _ := os.Hostname()
		node = host
	}
	r, err := migrate(ctx, db, newTables(o.TablePrefix), node, dryRun)
	r.Server = server
	return r, err
}

// migrate applies the missing steps in order, recording each.
func migrate(ctx context.Context, db *sql.DB, t tables, node string, dryRun bool) (Report, error) {
	var r Report
	conn, err := db.Conn(ctx) // GET_LOCK belongs to one session
	if err != nil {
		return r, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	// MariaDB Galera refuses GET_LOCK (MDEV-30473); there the steps run
	// unlocked, which their IF NOT EXISTS makes safe.
	lock := t.prefix + "wprelay_migrate"
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK(CONCAT(DATABASE(), '.', ?), 60)", lock).Scan(&got)
	if _, refused := mysqlErr(err); err != nil && !refused {
		return r, fmt.Errorf("migrate: lock: %w", err)
	}
	if err == nil {
		if !got.Valid || got.Int64 != 1 {
			return r, errors.New("migrate: another node held the migration lock for 60 s")
		}
		r.Locked = true
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.', ?))", lock)
	}

	// An up-to-date schema runs no DDL, so that sidecars may run with a
	// user that cannot change tables (see README, "Choosing a store").
	history, err := readHistory(ctx, conn, t)
	if err != nil {
		return r, err
	}
	if history == nil && !dryRun {
		_, err := conn.ExecContext(ctx, t.expand(`CREATE TABLE IF NOT EXISTS {migrations} (
			version INT NOT NULL PRIMARY KEY,
			name VARCHAR(191) NOT NULL,
			applied_at DATETIME(6) NOT NULL,
			applied_by VARCHAR(191) NOT NULL
		)`+tableOptions))
		if err != nil {
			return r, fmt.Errorf("migrate: create %s: %w", t.migrations, err)
		}
	}
	done := map[int]bool{}
	for _, s := range history {
		done[s.Version] = true
		r.From = max(r.From, s.Version)
	}
	if r.From > SchemaVersion() {
		return r, fmt.Errorf("migrate: the database's schema is version %d, newer than this wprelay's %d: upgrade wprelay", r.From, SchemaVersion())
	}
	r.To = r.From
	for _, m := range migrations {
		if done[m.version] {
			continue
		}
		step := Step{Version: m.version, Name: m.name}
		if !dryRun {
			for _, stmt := range m.stmts {
				if _, err := conn.ExecContext(ctx, t.expand(stmt)); err != nil {
					return r, fmt.Errorf("migrate: version %d (%s): %w", m.version, m.name, err)
				}
			}
			step.AppliedAt, step.AppliedBy = time.Now().UTC(), node
			_, err := conn.ExecContext(ctx, t.expand("INSERT INTO {migrations} (version, name, applied_at, applied_by) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE version = version"),
				m.version, m.name, step.AppliedAt, node)
			if err != nil {
				return r, fmt.Errorf("migrate: record version %d: %w", m.version, err)
			}
		}
		r.Applied = append(r.Applied, step)
		r.To = m.version
	}
	if r.History, err = readHistory(ctx, conn, t); err != nil {
		return r, err
	}
	return r, nil
}

// readHistory lists the recorded steps; none when the table is missing.
func readHistory(ctx context.Context, conn *sql.Conn, t tables) ([]Step, error) {
	rows, err := conn.QueryContext(ctx, t.expand("SELECT version, name, applied_at, applied_by FROM {migrations} ORDER BY version"))
	if isNoTable(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s: %w", t.migrations, err)
	}
	defer rows.Close()
	out := []Step{} // not nil: the table exists
	for rows.Next() {
		var s Step
		if err := rows.Scan(&s.Version, &s.Name, &s.AppliedAt, &s.AppliedBy); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// checkSchema fails unless the schema is at this code's version.
func (db *DB) checkSchema(ctx context.Context) error {
	var v sql.NullInt64
	err := db.sql.QueryRowContext(ctx, db.t.expand("SELECT MAX(version) FROM {migrations}")).Scan(&v)
	if isNoTable(err) {
		return fmt.Errorf("mysql: no %s table: run wprelay migrate", db.t.migrations)
	}
	if err != nil {
		return fmt.Errorf("mysql: schema version: %w", err)
	}
	if int(v.Int64) != SchemaVersion() {
		return fmt.Errorf("mysql: schema version %d, this wprelay needs %d: run wprelay migrate", v.Int64, SchemaVersion())
	}
	return nil
}
