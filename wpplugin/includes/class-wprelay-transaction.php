<?php
/**
 * WPRelay_Transaction: the database transaction one dispatch runs in.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Wraps the wprelay_event handlers of one receipt in START TRANSACTION …
 * COMMIT on WordPress's own connection, so that everything they write
 * through $wpdb commits together with the receipt's move to `done`, or not
 * at all.
 *
 * What breaks the guarantee is detected and logged, and the dispatch then
 * counts as at-least-once (its writes may be applied again on a retry):
 *
 * - a transaction already open when the dispatch starts (nested): no
 *   START TRANSACTION is sent, since MySQL would commit the outer one;
 * - a handler that ends the transaction itself (COMMIT, ROLLBACK, BEGIN,
 *   START TRANSACTION, autocommit, DDL, LOCK TABLES): seen through $wpdb's
 *   `query` filter, and for statements that bypass $wpdb by the savepoint
 *   taken at the start no longer existing at the end;
 * - a write to a table that is not InnoDB (MyISAM, Aria, MEMORY), which no
 *   ROLLBACK undoes.
 *
 * A PHP process that ends inside the transaction (exit, fatal error, time
 * or memory limit) is rolled back by the shutdown hook; one that is killed
 * outright is rolled back by the server when its connection drops.
 *
 * Callbacks given to after_commit() run once the transaction committed and
 * are dropped when it rolls back.
 */
class WPRelay_Transaction {

	/** The savepoint whose disappearance shows the transaction ended early. */
	const SAVEPOINT = 'wprelay_dispatch';

	/** Statements that end or implicitly commit a transaction. */
	const ENDS_TRANSACTION = '/^\s*(?:\/\*.*?\*\/\s*)*(COMMIT|ROLLBACK(?!\s+TO)|BEGIN|START\s+TRANSACTION|SET\s+(?:SESSION\s+|@@)?autocommit|CREATE\s+(?!TEMPORARY)|ALTER|DROP\s+(?!TEMPORARY)|TRUNCATE|RENAME|LOCK\s+TABLES?|UNLOCK\s+TABLES?)\b/is';

	/** Statements that write rows, and the table they write. */
	const WRITES = '/^\s*(?:INSERT|REPLACE)\s+(?:LOW_PRIORITY\s+|DELAYED\s+|HIGH_PRIORITY\s+|IGNORE\s+)*(?:INTO\s+)?`?([A-Za-z0-9_$]+)`?|^\s*UPDATE\s+(?:LOW_PRIORITY\s+|IGNORE\s+)*`?([A-Za-z0-9_$]+)`?|^\s*DELETE\s+(?:LOW_PRIORITY\s+|QUICK\s+|IGNORE\s+)*FROM\s+`?([A-Za-z0-9_$]+)`?/i';

	/**
	 * Database access.
	 *
	 * @var wpdb
	 */
	private $db;

	/**
	 * Whether a transaction of ours is open.
	 *
	 * @var bool
	 */
	private $open = false;

	/**
	 * Why this dispatch is only at-least-once ('' while exactly-once).
	 *
	 * @var string[]
	 */
	private $broken = array();

	/**
	 * Callbacks waiting for the commit.
	 *
	 * @var callable[]
	 */
	private $after = array();

	/**
	 * What the log lines name (e.g. "receipt_id=12 type=invoice.paid").
	 *
	 * @var string
	 */
	private $label = '';

	/**
	 * Our own statements, which the query filter lets through.
	 *
	 * @var bool
	 */
	private $internal = false;

	/**
	 * Storage engine by table, looked up once per process.
	 *
	 * @var array<string,string>
	 */
	private $engines = array();

	/**
	 * Called when the process ends inside the transaction, after the
	 * rollback; receives the label.
	 *
	 * @var callable|null
	 */
	private $on_abandon;

	/**
	 * Builds the transaction helper.
	 *
	 * @param wpdb $db Database access.
	 */
	public function __construct( wpdb $db ) {
		$this->db = $db;
	}

	/**
	 * Hooks the statement watcher and the shutdown rollback in.
	 */
	public function register_hooks(): void {
		add_filter( 'query', array( $this, 'watch' ), PHP_INT_MAX );
		// First thing at shutdown, before other shutdown hooks write into
		// the open transaction; register_shutdown_function covers a fatal
		// error raised before WordPress's own shutdown hook runs.
		add_action( 'shutdown', array( $this, 'abandon' ), PHP_INT_MIN );
		register_shutdown_function( array( $this, 'abandon' ) );
	}

	/**
	 * Tells whether a transaction of ours is open.
	 *
	 * @return bool
	 */
	public function is_open(): bool {
		return $this->open;
	}

	/**
	 * Sets what runs when the process ends inside the transaction, after
	 * the rollback (the dispatcher records the attempt's error).
	 *
	 * @param callable $callback Receives the label and the error text.
	 */
	public function on_abandon( callable $callback ): void {
		$this->on_abandon = $callback;
	}

	/**
	 * Starts a transaction, unless one is already open on the connection
	 * (then the dispatch falls back to at-least-once).
	 *
	 * @param string $label What log lines name.
	 * @return bool Whether the transaction was started.
	 */
	public function begin( string $label ): bool {
		if ( $this->open ) {
			$this->fall_back( 'a dispatch started inside a handler of ' . $label . ' runs in its transaction' );
			return false;
		}
		$this->label  = $label;
		$this->broken = array();
		$this->after  = array();
		// @@in_transaction is MariaDB's (10.3+); MySQL answers an error, read as "no".
		if ( '1' === (string) $this->sql( 'SELECT @@in_transaction' ) ) {
			$this->fall_back( 'a transaction was already open (nested transactions are not supported; START TRANSACTION would commit it)' );
			return false;
		}
		if ( false === $this->exec( 'START TRANSACTION' ) || false === $this->exec( 'SAVEPOINT ' . self::SAVEPOINT ) ) {
			$this->fall_back( 'START TRANSACTION failed: ' . $this->db->last_error );
			$this->exec( 'ROLLBACK' );
			return false;
		}
		$this->open = true;
		return true;
	}

	/**
	 * Tells, after the handlers ran, whether the transaction is still the
	 * one begin() started: "ok"; "ended" when a handler ended it with a
	 * statement seen through $wpdb (its writes so far are committed: the
	 * dispatch is at-least-once); "lost" when it ended without one (a
	 * deadlock or lock wait timeout rolled it back, or a handler bypassed
	 * $wpdb): the writes are partly gone and the receipt must be retried;
	 * "none" when no transaction was started.
	 *
	 * @return string
	 */
	public function state(): string {
		if ( ! $this->open ) {
			return 'none';
		}
		if ( false !== $this->exec( 'RELEASE SAVEPOINT ' . self::SAVEPOINT ) ) {
			return 'ok';
		}
		if ( ! empty( $this->broken ) ) {
			return 'ended';
		}
		$this->log( 'the transaction was rolled back inside a handler (deadlock, lock wait timeout, or a statement that bypassed $wpdb): ' . $this->db->last_error );
		return 'lost';
	}

	/**
	 * Locks a row for the rest of the transaction (SELECT … FOR UPDATE) and
	 * returns it.
	 *
	 * @param string $sql A prepared SELECT without FOR UPDATE.
	 * @return array|null
	 */
	public function lock_row( string $sql ): ?array {
		$this->internal = true;
		$row            = $this->db->get_row( $sql . ' FOR UPDATE', ARRAY_A ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- prepared by the caller.
		$this->internal = false;
		return is_array( $row ) ? $row : null;
	}

	/**
	 * Commits (also after a handler ended the transaction: it may have
	 * started another), then runs the after-commit callbacks.
	 *
	 * @return bool Whether COMMIT succeeded (false: the writes are gone).
	 */
	public function commit(): bool {
		if ( ! $this->open ) {
			$this->run_after();
			return true;
		}
		$this->open = false;
		if ( false === $this->exec( 'COMMIT' ) ) {
			$this->log( 'COMMIT failed, the handlers\' writes were rolled back: ' . $this->db->last_error );
			$this->after = array();
			return false;
		}
		$this->run_after();
		return true;
	}

	/**
	 * Rolls back and drops the after-commit callbacks.
	 */
	public function rollback(): void {
		$this->after = array();
		if ( ! $this->open ) {
			return;
		}
		$this->open = false;
		$this->exec( 'ROLLBACK' );
		/**
		 * Filters whether the object cache is flushed after a dispatch was
		 * rolled back. WordPress caches what the handlers wrote and read
		 * inside the transaction (options, meta, posts); after a rollback
		 * those entries are wrong, and a later handler in the same process
		 * (or, with a persistent object cache, any process) would read
		 * them. Default true; return false only if your handlers touch no
		 * cached data.
		 *
		 * @since 0.2.0
		 *
		 * @param bool $flush Default true.
		 */
		if ( apply_filters( 'wprelay_flush_cache_on_rollback', true ) ) {
			wp_cache_flush();
		}
	}

	/**
	 * Runs $callback after the commit, or now when no transaction is open.
	 *
	 * @param callable $callback Work with effects outside the database.
	 */
	public function after_commit( callable $callback ): void {
		if ( $this->open ) {
			$this->after[] = $callback;
			return;
		}
		$this->call( $callback );
	}

	/**
	 * Why the current dispatch is at-least-once; empty when exactly-once.
	 *
	 * @return string[]
	 */
	public function fallbacks(): array {
		return $this->broken;
	}

	/**
	 * The `query` filter: notices statements that end the transaction and
	 * writes to tables that cannot roll back.
	 *
	 * @param string $query SQL.
	 * @return string The same SQL.
	 */
	public function watch( $query ) {
		if ( ! $this->open || $this->internal || ! is_string( $query ) ) {
			return $query;
		}
		$ends = self::ends_transaction( $query );
		if ( '' !== $ends ) {
			$this->fall_back( 'a handler ran ' . $ends . ', which ends the transaction' );
			return $query;
		}
		$table  = self::written_table( $query );
		$engine = '' === $table ? '' : $this->engine( $table );
		if ( '' !== $engine && 'InnoDB' !== $engine ) {
			$this->fall_back( "a handler wrote to {$table}, a {$engine} table, which a rollback does not undo" );
		}
		return $query;
	}

	/**
	 * Names the statement when $sql ends or implicitly commits a
	 * transaction (COMMIT, ROLLBACK, BEGIN, START TRANSACTION, autocommit,
	 * DDL, LOCK TABLES); '' otherwise.
	 *
	 * @param string $sql SQL.
	 * @return string
	 */
	public static function ends_transaction( string $sql ): string {
		return preg_match( self::ENDS_TRANSACTION, $sql, $m ) ? strtoupper( trim( (string) preg_replace( '/\s+/', ' ', $m[1] ) ) ) : '';
	}

	/**
	 * Returns the table an INSERT, REPLACE, UPDATE or DELETE writes; ''
	 * for other statements.
	 *
	 * @param string $sql SQL.
	 * @return string
	 */
	public static function written_table( string $sql ): string {
		if ( ! preg_match( self::WRITES, $sql, $m ) ) {
			return '';
		}
		foreach ( array( 1, 2, 3 ) as $i ) {
			if ( '' !== ( $m[ $i ] ?? '' ) ) {
				return $m[ $i ];
			}
		}
		return '';
	}

	/**
	 * Shutdown: rolls back a transaction the process is leaving open (exit,
	 * fatal error, time limit inside a handler).
	 */
	public function abandon(): void {
		if ( ! $this->open ) {
			return;
		}
		$this->rollback();
		$err = error_get_last();
		$why = is_array( $err ) && in_array( $err['type'], array( E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR, E_RECOVERABLE_ERROR ), true )
			? sprintf( 'PHP fatal error: %s in %s:%d', $err['message'], $err['file'], $err['line'] )
			: 'the PHP process ended (exit or die) inside a handler';
		$this->log( $why . '; its writes were rolled back and the receipt will be retried' );
		if ( $this->on_abandon ) {
			call_user_func( $this->on_abandon, $this->label, $why );
		}
	}

	/**
	 * Records why this dispatch is at-least-once, with a log line.
	 *
	 * @param string $why Reason.
	 */
	private function fall_back( string $why ): void {
		if ( in_array( $why, $this->broken, true ) ) {
			return;
		}
		$this->broken[] = $why;
		$this->log( 'falls back to at-least-once: ' . $why );
	}

	/**
	 * Returns a table's storage engine ('' when unknown).
	 *
	 * @param string $table Table name.
	 * @return string
	 */
	private function engine( string $table ): string {
		if ( ! isset( $this->engines[ $table ] ) ) {
			$this->engines[ $table ] = (string) $this->sql( $this->db->prepare( 'SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s', $table ) );
		}
		return $this->engines[ $table ];
	}

	/**
	 * Runs and clears the after-commit callbacks.
	 */
	private function run_after(): void {
		$after       = $this->after;
		$this->after = array();
		foreach ( $after as $callback ) {
			$this->call( $callback );
		}
	}

	/**
	 * Runs one callback; a throw is logged, not passed on (the event is
	 * already committed).
	 *
	 * @param callable $callback Callback.
	 */
	private function call( callable $callback ): void {
		try {
			call_user_func( $callback );
		} catch ( Throwable $e ) {
			$this->log( sprintf( 'an after-commit callback threw %s: %s', get_class( $e ), $e->getMessage() ) );
		}
	}

	/**
	 * Runs one of our own statements.
	 *
	 * @param string $sql SQL without input.
	 * @return int|bool
	 */
	private function exec( string $sql ) {
		$this->internal = true;
		$suppress       = $this->db->suppress_errors( true );
		$done           = $this->db->query( $sql ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- constant statements.
		$this->db->suppress_errors( $suppress );
		$this->internal = false;
		return $done;
	}

	/**
	 * Reads one value with one of our own statements.
	 *
	 * @param string $sql SQL.
	 * @return string|null
	 */
	private function sql( string $sql ) {
		$this->internal = true;
		$suppress       = $this->db->suppress_errors( true );
		$value          = $this->db->get_var( $sql ); // phpcs:ignore WordPress.DB.PreparedSQL.NotPrepared -- constant or prepared.
		$this->db->suppress_errors( $suppress );
		$this->internal = false;
		return $value;
	}

	/**
	 * Writes a log line naming the dispatch.
	 *
	 * @param string $msg Message.
	 */
	private function log( string $msg ): void {
		error_log( 'wprelay: dispatch ' . $this->label . ': ' . $msg ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
	}
}
