<?php
/**
 * WPRelay_Outbox: events WordPress emitted, until the sidecar has them.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The outbox table. A row is written in the request that emits the event,
 * so that nothing is lost when the sidecar is down; the sender claims due
 * rows with a lease, so that two senders never post one row at once.
 *
 * States: pending (due at next_at), sent, failed (a 4xx answer, or too many
 * attempts).
 */
class WPRelay_Outbox {

	/** Seconds a claimed row stays invisible to other senders. */
	const LEASE = 120;

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
	 * Builds the outbox.
	 *
	 * @param wpdb           $db     Database access.
	 * @param WPRelay_Schema $schema Table names.
	 */
	public function __construct( wpdb $db, WPRelay_Schema $schema ) {
		$this->db     = $db;
		$this->schema = $schema;
	}

	/**
	 * Adds a pending row, due now.
	 *
	 * @param string $key        Idempotency key (UUIDv4).
	 * @param string $type       Event type.
	 * @param string $object_ref Object reference.
	 * @param string $payload    The exact JSON body to send on every attempt.
	 * @return int Row id, 0 on failure.
	 */
	public function add( string $key, string $type, string $object_ref, string $payload ): int {
		$now = gmdate( 'Y-m-d H:i:s' );
		$ok  = $this->db->insert(
			$this->schema->outbox(),
			array(
				'idempotency_key' => $key,
				'event_type'      => $type,
				'object_ref'      => $object_ref,
				'payload'         => $payload,
				'state'           => 'pending',
				'attempts'        => 0,
				'next_at'         => $now,
				'created_at'      => $now,
			),
			array( '%s', '%s', '%s', '%s', '%s', '%d', '%s', '%s' )
		);
		return $ok ? (int) $this->db->insert_id : 0;
	}

	/**
	 * Claims a due row for one attempt: counts the attempt and hides the row
	 * for LEASE seconds. Returns the row, or null when it is not due or
	 * another sender claimed it first.
	 *
	 * @param int  $id    Row id.
	 * @param bool $early Whether a row waiting for its next try after a
	 *                    network error may be claimed before it is due.
	 * @return array|null
	 */
	public function claim( int $id, bool $early = false ): ?array {
		$table = $this->schema->outbox();
		$now   = time();
		$done  = $this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET attempts = attempts + 1, next_at = %s WHERE id = %d AND state = 'pending' AND ( next_at <= %s OR ( %d = 1 AND last_error LIKE 'network:%%' AND next_at <= %s ) )",
				gmdate( 'Y-m-d H:i:s', $now + self::LEASE ),
				$id,
				gmdate( 'Y-m-d H:i:s', $now ),
				$early ? 1 : 0,
				gmdate( 'Y-m-d H:i:s', $now + WPRelay_Sender::NETWORK_RETRY )
			)
		);
		if ( 1 !== (int) $done ) {
			return null;
		}
		return $this->get( $id );
	}

	/**
	 * Returns a row by id.
	 *
	 * @param int $id Row id.
	 * @return array|null
	 */
	public function get( int $id ): ?array {
		$table = $this->schema->outbox();
		$row   = $this->db->get_row( $this->db->prepare( "SELECT * FROM {$table} WHERE id = %d", $id ), ARRAY_A );
		return is_array( $row ) ? $row : null;
	}

	/**
	 * Returns the ids of due pending rows, oldest first.
	 *
	 * @param int $limit Most rows.
	 * @return int[]
	 */
	public function due( int $limit ): array {
		$table = $this->schema->outbox();
		$ids   = $this->db->get_col(
			$this->db->prepare(
				"SELECT id FROM {$table} WHERE state = 'pending' AND next_at <= %s ORDER BY next_at, id LIMIT %d",
				gmdate( 'Y-m-d H:i:s' ),
				$limit
			)
		);
		return array_map( 'intval', $ids );
	}

	/**
	 * Returns the ids of pending rows waiting only because the sidecar
	 * could not be reached (their next try is at most NETWORK_RETRY away).
	 *
	 * @param int $limit Most rows.
	 * @return int[]
	 */
	public function unreachable( int $limit ): array {
		$table = $this->schema->outbox();
		$ids   = $this->db->get_col(
			$this->db->prepare(
				"SELECT id FROM {$table} WHERE state = 'pending' AND last_error LIKE 'network:%%' AND next_at <= %s ORDER BY id LIMIT %d",
				gmdate( 'Y-m-d H:i:s', time() + WPRelay_Sender::NETWORK_RETRY ),
				$limit
			)
		);
		return array_map( 'intval', $ids );
	}

	/**
	 * Returns when the earliest pending row is due.
	 *
	 * @return int|null Unix time; null when no row is pending.
	 */
	public function next_due(): ?int {
		$table = $this->schema->outbox();
		$next  = $this->db->get_var( "SELECT MIN(next_at) FROM {$table} WHERE state = 'pending'" );
		return empty( $next ) ? null : (int) strtotime( $next . ' UTC' );
	}

	/**
	 * Marks a row sent.
	 *
	 * @param int $id Row id.
	 */
	public function mark_sent( int $id ): void {
		$this->update(
			$id,
			array(
				'state'      => 'sent',
				'sent_at'    => gmdate( 'Y-m-d H:i:s' ),
				'last_error' => null,
			)
		);
	}

	/**
	 * Schedules the next attempt of a row.
	 *
	 * @param int    $id      Row id.
	 * @param int    $at      Unix time of the next attempt.
	 * @param string $error   Why this attempt failed.
	 * @param bool   $uncount Whether the attempt does not count (the sidecar was not reached).
	 */
	public function retry_at( int $id, int $at, string $error, bool $uncount = false ): void {
		$table = $this->schema->outbox();
		$this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET next_at = %s, last_error = %s, attempts = IF(%d = 1 AND attempts > 0, attempts - 1, attempts) WHERE id = %d",
				gmdate( 'Y-m-d H:i:s', $at ),
				$error,
				$uncount ? 1 : 0,
				$id
			)
		);
	}

	/**
	 * Marks a row failed for good.
	 *
	 * @param int    $id    Row id.
	 * @param string $error The reason.
	 */
	public function mark_failed( int $id, string $error ): void {
		$this->update(
			$id,
			array(
				'state'      => 'failed',
				'last_error' => $error,
			)
		);
	}

	/**
	 * Makes a failed row pending and due now (the admin's "retry").
	 *
	 * @param int $id Row id.
	 * @return bool Whether a failed row was reset.
	 */
	public function requeue( int $id ): bool {
		$done = $this->db->update(
			$this->schema->outbox(),
			array(
				'state'    => 'pending',
				'attempts' => 0,
				'next_at'  => gmdate( 'Y-m-d H:i:s' ),
			),
			array(
				'id'    => $id,
				'state' => 'failed',
			),
			array( '%s', '%d', '%s' ),
			array( '%d', '%s' )
		);
		return 1 === $done;
	}

	/**
	 * Makes a row due now for the admin's "retry now": a failed row is
	 * pending again with a fresh attempt budget, a pending row waits no
	 * longer. A sent row is left alone.
	 *
	 * @param int $id Row id.
	 * @return bool Whether the row is now pending and due.
	 */
	public function due_now( int $id ): bool {
		if ( $this->requeue( $id ) ) {
			return true;
		}
		$table = $this->schema->outbox();
		$this->db->query(
			$this->db->prepare(
				"UPDATE {$table} SET next_at = %s WHERE id = %d AND state = 'pending'",
				gmdate( 'Y-m-d H:i:s' ),
				$id
			)
		);
		$row = $this->get( $id );
		return null !== $row && 'pending' === $row['state'] && strtotime( $row['next_at'] . ' UTC' ) <= time();
	}

	/**
	 * Returns the newest rows, for the admin page.
	 *
	 * @param int    $limit Most rows.
	 * @param string $state Only this state ('' for all).
	 * @return array[]
	 */
	public function recent( int $limit, string $state = '' ): array {
		$table = $this->schema->outbox();
		$cols  = 'id, idempotency_key, event_type, object_ref, state, attempts, next_at, last_error, created_at, sent_at';
		if ( '' === $state ) {
			$sql = $this->db->prepare( "SELECT {$cols} FROM {$table} ORDER BY id DESC LIMIT %d", $limit );
		} else {
			$sql = $this->db->prepare( "SELECT {$cols} FROM {$table} WHERE state = %s ORDER BY id DESC LIMIT %d", $state, $limit );
		}
		$rows = $this->db->get_results( $sql, ARRAY_A );
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Counts rows by state.
	 *
	 * @return array<string,int>
	 */
	public function counts(): array {
		$table = $this->schema->outbox();
		$rows  = $this->db->get_results( "SELECT state, COUNT(*) AS n FROM {$table} GROUP BY state", ARRAY_A );
		$out   = array(
			'pending' => 0,
			'sent'    => 0,
			'failed'  => 0,
		);
		foreach ( (array) $rows as $row ) {
			$out[ $row['state'] ] = (int) $row['n'];
		}
		return $out;
	}

	/**
	 * Returns how long ago the oldest pending row was emitted.
	 *
	 * @return int Seconds; 0 when no row is pending.
	 */
	public function oldest_pending_age(): int {
		$table  = $this->schema->outbox();
		$oldest = $this->db->get_var( "SELECT MIN(created_at) FROM {$table} WHERE state = 'pending'" );
		if ( empty( $oldest ) ) {
			return 0;
		}
		return max( 0, time() - (int) strtotime( $oldest . ' UTC' ) );
	}

	/**
	 * Returns the ids of rows, oldest first.
	 *
	 * @param string $state Only this state ('' for all).
	 * @param int    $limit Most rows.
	 * @return int[]
	 */
	public function ids( string $state, int $limit ): array {
		$table = $this->schema->outbox();
		if ( '' === $state ) {
			$ids = $this->db->get_col( $this->db->prepare( "SELECT id FROM {$table} ORDER BY id LIMIT %d", $limit ) );
		} else {
			$ids = $this->db->get_col( $this->db->prepare( "SELECT id FROM {$table} WHERE state = %s ORDER BY id LIMIT %d", $state, $limit ) );
		}
		return array_map( 'intval', (array) $ids );
	}

	/**
	 * Deletes up to $limit rows in a state whose time (sent_at for sent
	 * rows, created_at otherwise) is before $before.
	 *
	 * @param string $state  sent, failed or pending.
	 * @param int    $before Unix time.
	 * @param int    $limit  Most rows deleted by this call.
	 * @return int Rows deleted.
	 */
	public function purge( string $state, int $before, int $limit ): int {
		$table  = $this->schema->outbox();
		$column = 'sent' === $state ? 'sent_at' : 'created_at';
		$done   = $this->db->query(
			$this->db->prepare(
				"DELETE FROM {$table} WHERE state = %s AND {$column} < %s ORDER BY id LIMIT %d",
				$state,
				gmdate( 'Y-m-d H:i:s', $before ),
				$limit
			)
		);
		return (int) $done;
	}

	/**
	 * Updates one row's columns.
	 *
	 * @param int   $id   Row id.
	 * @param array $cols Column => value.
	 */
	private function update( int $id, array $cols ): void {
		$this->db->update( $this->schema->outbox(), $cols, array( 'id' => $id ), null, array( '%d' ) );
	}
}
