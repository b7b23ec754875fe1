<?php
/**
 * WPRelay_Receipts: the dedupe record of what the sidecar delivered.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Stores each delivered request once, keyed by its Idempotency-Key.
 *
 * Delivery is at-least-once: the sidecar retries after a timeout even when
 * the first attempt was stored. The UNIQUE index makes the insert the
 * commit point, so that two concurrent deliveries of one key store it once
 * and only the first is dispatched.
 *
 * Statuses: stored (waiting for the wprelay_event actions: due at next_at,
 * NULL = now), dispatching (claimed by a runner until lease_until; after
 * that the runner counts as dead and the receipt is due again), done,
 * failed (every attempt threw or died; replayable), applied (user-sync and
 * results, handled in the request).
 *
 * The claim is committed on its own, before the dispatch's transaction
 * starts: a runner that dies leaves a claim that expires, and the attempt
 * it spent stays counted.
 */
class WPRelay_Receipts {

	/**
	 * Database access.
	 *
	 * @var wpdb
	 */
	private $db;

	/**
	 * Table names.
	 *
	 * @var WPRelay_Schema
	 */
	private $schema;

	/**
	 * Builds the receipts store.
	 *
	 * @param wpdb           $db     Database access.
	 * @param WPRelay_Schema $schema Table names.
	 */
	public function __construct( wpdb $db, WPRelay_Schema $schema ) {
		$this->db     = $db;
		$this->schema = $schema;
	}

	/**
	 * Inserts a receipt unless its key is already stored.
	 *
	 * @param array $row idempotency_key, route, event_id, event_type, event (JSON), trace_id, status, subject_key (optional).
	 * @return int|null The new row's id; null when the key was already stored.
	 * @throws RuntimeException When the database refuses the insert.
	 */
	public function insert_if_new( array $row ): ?int {
		// ON DUPLICATE KEY UPDATE id = id: 1 row affected for an insert, 0
		// for a duplicate, and other errors still surface (INSERT IGNORE
		// would hide truncation too).
		$table = $this->schema->receipts();
		$sql   = $this->db->prepare(
			"INSERT INTO {$table} (idempotency_key, route, event_id, event_type, event, trace_id, received_at, status, subject_key) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON DUPLICATE KEY UPDATE id = id",
			$row['idempotency_key'],
			$row['route'],
			$row['event_id'],
			$row['event_type'],
			$row['event'],
			$row['trace_id'],
			gmdate( 'Y-m-d H:i:s' ),
			$row['status'],
			$row['subject_key'] ?? ''
		);
		$done  = $this->db->query( $sql );
		if ( false === $done ) {
			throw new RuntimeException( esc_html( 'receipt insert failed: ' . $this->db->last_error ) );
		}
		return 1 === (int) $done ? (int) $this->db->insert_id : null;
	}

	/**
	 * Returns a receipt by id.
	 *
	 * @param int $id Row id.
	 * @return array|null
	 */
	public function get( int $id ): ?array {
		$table = $this->schema->receipts();
		$row   = $this->db->get_row( $this->db->prepare( "SELECT * FROM {$table} WHERE id = %d", $id ), ARRAY_A );
		return is_array( $row ) ? $row : null;
	}

	/**
	 * Returns a receipt by idempotency key.
	 *
	 * @param string $key Idempotency key.
	 * @return array|null
	 */
	public function find( string $key ): ?array {
		$table = $this->schema->receipts();
		$row   = $this->db->get_row( $this->db->prepare( "SELECT * FROM {$table} WHERE idempotency_key = %s", $key ), ARRAY_A );
		return is_array( $row ) ? $row : null;
	}

	/**
	 * Moves a receipt from one status to another, atomically.
	 *
	 * @param int    $id    Row id.
	 * @param string $from  Expected current status.
	 * @param string $to    New status.
	 * @param string $error Error to record ('' for none).
	 * @return bool Whether this call made the change (false: someone else did, or the status differs).
	 */
	public function transition( int $id, string $from, string $to, string $error = '' ): bool {
		$done = $this->db->update(
			$this->schema->receipts(),
			array(
				'status'     => $to,
				'last_error' => '' === $error ? null : $error,
			),
			array(
				'id'     => $id,
				'status' => $from,
			),
			array( '%s', '%s' ),
			array( '%d', '%s' )
		);
		return 1 === $done;
	}

	/**
	 * Records the object a receipt was applied to (e.g. "user:12").
	 *
	 * @param int    $id  Row id.
	 * @param string $ref Object reference.
	 */
	public function set_result_ref( int $id, string $ref ): void {
		$this->db->update( $this->schema->receipts(), array( 'result_ref' => $ref ), array( 'id' => $id ), array( '%s' ), array( '%d' ) );
	}

	/**
	 * Deletes a receipt, so that a later delivery of its key is applied
	 * (used when applying it failed).
	 *
	 * @param int $id Row id.
	 */
	public function delete( int $id ): void {
		$this->db->delete( $this->schema->receipts(), array( 'id' => $id ), array( '%d' ) );
	}

	/**
	 * Returns the ids of the receipts due for dispatch, oldest first:
	 * stored ones whose time has come, and claimed ones whose runner's
	 * lease expired.
	 *
	 * @param int $limit Most ids to return.
	 * @return int[]
	 */
	public function due( int $limit ): array {
		$table = $this->schema->receipts();
		$now   = gmdate( 'Y-m-d H:i:s' );
		$ids   = $this->db->get_col(
			$this->db->prepare(
				"SELECT id FROM {$table} WHERE (status = 'stored' AND (next_at IS NULL OR next_at <= %s)) OR (status = 'dispatching' AND lease_until < %s) ORDER BY id LIMIT %d",
				$now,
				$now,
				$limit
			)
		);
		return array_map( 'intval', $ids );
	}

	/**
	 * Returns when the next stored receipt is due (Unix time), or 0 when
	 * none is waiting.
	 *
	 * @return int
	 */
	public function next_due(): int {
		$table = $this->schema->receipts();
		$at    = $this->db->get_var( "SELECT MIN(COALESCE(next_at, received_at)) FROM {$table} WHERE status = 'stored'" );
		$lease = $this->db->get_var( "SELECT MIN(lease_until) FROM {$table} WHERE status = 'dispatching'" );
		$times = array_filter( array_map( static fn( $t ) => $t ? (int) strtotime( $t . ' UTC' ) : 0, array( $at, $lease ) ) );
		return empty( $times ) ? 0 : min( $times );
	}

	/**
	 * Tells whether an earlier receipt about the same subject is still
	 * waiting or being dispatched (this one must wait for it).
	 *
	 * @param int    $id          Row id.
	 * @param string $subject_key Subject key ('' never waits).
	 * @return bool
	 */
	public function waits_for_earlier( int $id, string $subject_key ): bool {
		if ( '' === $subject_key ) {
			return false;
		}
		$table = $this->schema->receipts();
		return null !== $this->db->get_var(
			$this->db->prepare(
				"SELECT id FROM {$table} WHERE subject_key = %s AND id < %d AND status IN ('stored', 'dispatching') LIMIT 1",
				$subject_key,
				$id
			)
		);
	}

	/**
	 * Claims a due receipt for one attempt, in its own autocommitted
	 * statement: status dispatching, attempts + 1, lease_until now + $lease.
	 * A receipt reclaimed after its lease expired records that the previous
	 * attempt did not finish.
	 *
	 * @param int    $id    Row id.
	 * @param int    $lease Seconds the claim holds.
	 * @param string $token This attempt's token.
	 * @return array|null The claimed row; null when it was not due or another runner has it.
	 */
	public function claim( int $id, int $lease, string $token ): ?array {
		$table = $this->schema->receipts();
		$now   = time();
		// Assignments run left to right: last_error reads the old status.
		$done = $this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET last_error = IF(status = 'dispatching', %s, last_error), status = 'dispatching', attempts = attempts + 1, lease_until = %s, claim_token = %s WHERE id = %d AND ((status = 'stored' AND (next_at IS NULL OR next_at <= %s)) OR (status = 'dispatching' AND lease_until < %s))",
				'the previous attempt did not finish: its PHP process was killed or lost its database connection',
				gmdate( 'Y-m-d H:i:s', $now + $lease ),
				$token,
				$id,
				gmdate( 'Y-m-d H:i:s', $now ),
				gmdate( 'Y-m-d H:i:s', $now )
			)
		);
		if ( 1 !== (int) $done ) {
			return null;
		}
		return $this->get( $id );
	}

	/**
	 * The SELECT that locks a receipt inside the dispatch's transaction.
	 *
	 * @param int $id Row id.
	 * @return string
	 */
	public function lock_query( int $id ): string {
		$table = $this->schema->receipts();
		return $this->db->prepare( "SELECT id, status, claim_token FROM {$table} WHERE id = %d", $id );
	}

	/**
	 * Ends an attempt of the runner holding $token: done, stored again (due
	 * at $next_at) or failed.
	 *
	 * @param int    $id      Row id.
	 * @param string $token   The attempt's token.
	 * @param string $status  done, stored or failed.
	 * @param int    $next_at Unix time the receipt is due again (stored only).
	 * @param string $error   Error to record ('' keeps the last one).
	 * @return bool Whether the row was still this attempt's.
	 */
	public function finish( int $id, string $token, string $status, int $next_at = 0, string $error = '' ): bool {
		$table = $this->schema->receipts();
		$done  = $this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET status = %s, next_at = %s, lease_until = NULL, last_error = IF(%s = '', last_error, %s) WHERE id = %d AND status = 'dispatching' AND claim_token = %s",
				$status,
				gmdate( 'Y-m-d H:i:s', $next_at > 0 ? $next_at : time() ),
				$error,
				$error,
				$id,
				$token
			)
		);
		return 1 === (int) $done;
	}

	/**
	 * Makes a failed receipt due again, with a fresh set of attempts.
	 *
	 * @param int $id Row id.
	 * @return bool Whether it was failed (and is now stored).
	 */
	public function replay( int $id ): bool {
		$table = $this->schema->receipts();
		$done  = $this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET status = 'stored', attempts = 0, next_at = NULL, lease_until = NULL, claim_token = '' WHERE id = %d AND status = 'failed'",
				$id
			)
		);
		return 1 === (int) $done;
	}

	/**
	 * Returns the latest receipts of the events route in a status.
	 *
	 * @param string $status Status (failed, stored, …).
	 * @param int    $limit  Most rows.
	 * @return array[] id, event_id, event_type, received_at, attempts, next_at, last_error.
	 */
	public function in_status( string $status, int $limit ): array {
		$table = $this->schema->receipts();
		$rows  = $this->db->get_results(
			$this->db->prepare(
				"SELECT id, event_id, event_type, received_at, attempts, next_at, last_error FROM {$table} WHERE route = 'events' AND status = %s ORDER BY id DESC LIMIT %d",
				$status,
				$limit
			),
			ARRAY_A
		);
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Counts the receipts waiting for a retry (stored after a failed attempt).
	 *
	 * @return int
	 */
	public function retrying(): int {
		$table = $this->schema->receipts();
		return (int) $this->db->get_var( "SELECT COUNT(*) FROM {$table} WHERE status = 'stored' AND attempts > 0" );
	}

	/**
	 * Returns the ids of the failed receipts of an event id, or of every
	 * failed receipt when $event_id is ''.
	 *
	 * @param string $event_id Event id ('' for all).
	 * @param int    $limit    Most ids.
	 * @return int[]
	 */
	public function failed_ids( string $event_id, int $limit ): array {
		$table = $this->schema->receipts();
		$sql   = '' === $event_id
			? $this->db->prepare( "SELECT id FROM {$table} WHERE status = 'failed' ORDER BY id LIMIT %d", $limit )
			: $this->db->prepare( "SELECT id FROM {$table} WHERE status = 'failed' AND event_id = %s ORDER BY id LIMIT %d", $event_id, $limit );
		return array_map( 'intval', (array) $this->db->get_col( $sql ) );
	}

	/**
	 * Returns the newest receipts (without the event body), for WP-CLI.
	 *
	 * @param int    $limit  Most rows.
	 * @param string $status Only this status ('' for all).
	 * @param string $type   Only this event type ('' for all).
	 * @return array[]
	 */
	public function recent( int $limit, string $status = '', string $type = '' ): array {
		$table = $this->schema->receipts();
		$where = array( '1=1' );
		$args  = array();
		if ( '' !== $status ) {
			$where[] = 'status = %s';
			$args[]  = $status;
		}
		if ( '' !== $type ) {
			$where[] = 'event_type = %s';
			$args[]  = $type;
		}
		$args[] = $limit;
		$sql    = "SELECT id, event_id, event_type, route, status, attempts, next_at, received_at, result_ref, last_error FROM {$table} WHERE " . implode( ' AND ', $where ) . ' ORDER BY id DESC LIMIT %d';
		$rows   = $this->db->get_results( $this->db->prepare( $sql, $args ), ARRAY_A );
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Returns the receipts of an event id (one per route it arrived on).
	 *
	 * @param string $event_id Event id.
	 * @return array[]
	 */
	public function by_event( string $event_id ): array {
		$table = $this->schema->receipts();
		$rows  = $this->db->get_results( $this->db->prepare( "SELECT * FROM {$table} WHERE event_id = %s ORDER BY id", $event_id ), ARRAY_A );
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Counts receipts by status.
	 *
	 * @return array<string,int>
	 */
	public function counts(): array {
		$table = $this->schema->receipts();
		$rows  = $this->db->get_results( "SELECT status, COUNT(*) AS n FROM {$table} GROUP BY status", ARRAY_A );
		$out   = array();
		foreach ( (array) $rows as $row ) {
			$out[ $row['status'] ] = (int) $row['n'];
		}
		return $out;
	}

	/**
	 * Deletes up to $limit receipts received before $before that are no
	 * longer waiting to be dispatched (retention).
	 *
	 * @param int      $before   Unix time.
	 * @param int      $limit    Most rows deleted by this call.
	 * @param string[] $statuses Statuses that may be deleted.
	 * @return int Rows deleted.
	 */
	public function purge( int $before, int $limit, array $statuses ): int {
		if ( empty( $statuses ) ) {
			return 0;
		}
		$table = $this->schema->receipts();
		$in    = implode( ', ', array_fill( 0, count( $statuses ), '%s' ) );
		$args  = array_merge( $statuses, array( gmdate( 'Y-m-d H:i:s', $before ), $limit ) );
		return (int) $this->db->query( $this->db->prepare( "DELETE FROM {$table} WHERE status IN ({$in}) AND received_at < %s ORDER BY id LIMIT %d", $args ) );
	}
}
