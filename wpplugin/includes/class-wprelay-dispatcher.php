<?php
/**
 * WPRelay_Dispatcher: runs the wprelay_event actions off the request, each
 * receipt in one transaction.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Runs `wprelay_event` and `wprelay_event_{type}` for the stored receipts,
 * outside the request that stored them, in one job per batch: through
 * Action Scheduler when it is active, else a WP-Cron single event. A burst
 * of deliveries schedules one job, not one per receipt.
 *
 * Each receipt is dispatched so that its database effects happen exactly
 * once:
 *
 * 1. claim: an autocommitted UPDATE (stored → dispatching, attempts + 1,
 *    a lease of `wprelay_dispatch_lease` seconds, default 60). Two runners
 *    cannot both claim a receipt;
 * 2. START TRANSACTION, then SELECT … FOR UPDATE on the receipt: a runner
 *    that reclaims it after the lease expired waits for this one's commit
 *    or rollback, so the handlers never run twice at the same time;
 * 3. the actions run; the receipt's move to `done` is written in the same
 *    transaction, and COMMIT applies both, or neither;
 * 4. a handler that throws: ROLLBACK, and the receipt is stored again, due
 *    after the next delay of `wprelay_dispatch_retry_delays` (10 s, 1 min,
 *    5 min, 30 min, 2 h), with the error and the attempt recorded; after the
 *    last delay it is `failed` (shown on the plugin page, replayable);
 * 5. a process that ends inside the handlers (exit, fatal error) is rolled
 *    back at shutdown and recorded as a failed attempt; one that is killed
 *    is rolled back by the database when its connection drops, and its
 *    receipt is due again once the lease expired.
 *
 * Per subject (source, tenant, subject type and id of the envelope), a
 * receipt waits while an earlier one about the same subject is stored or
 * being dispatched, retries included; one that ends `failed` no longer
 * holds the later ones.
 */
class WPRelay_Dispatcher {

	/** The cron / Action Scheduler hook that dispatches a batch of receipts. */
	const HOOK = 'wprelay_dispatch';

	/** Action Scheduler group. */
	const GROUP = 'wprelay';

	/** Default seconds a claim holds before its receipt is due again. */
	const LEASE = 60;

	/** Default delays before the 2nd, 3rd, … attempt (seconds). */
	const DELAYS = array( 10, 60, 300, 1800, 7200 );

	/** Most receipts one job dispatches. */
	const BATCH = 100;

	/** Seconds after which a job stops taking receipts and schedules the next. */
	const BUDGET = 20;

	/**
	 * Receipts store.
	 *
	 * @var WPRelay_Receipts
	 */
	private $receipts;

	/**
	 * The dispatch transaction.
	 *
	 * @var WPRelay_Transaction
	 */
	private $tx;

	/**
	 * The attempt in progress: id, token, attempts, type.
	 *
	 * @var array|null
	 */
	private $current;

	/**
	 * Builds the dispatcher.
	 *
	 * @param WPRelay_Receipts    $receipts Receipts store.
	 * @param WPRelay_Transaction $tx       The dispatch transaction.
	 */
	public function __construct( WPRelay_Receipts $receipts, WPRelay_Transaction $tx ) {
		$this->receipts = $receipts;
		$this->tx       = $tx;
	}

	/**
	 * Hooks the dispatch job in.
	 */
	public function register_hooks(): void {
		add_action( self::HOOK, array( $this, 'run' ), 10, 0 );
		$this->tx->on_abandon( array( $this, 'abandoned' ) );
	}

	/**
	 * Makes sure a dispatch job runs at $at (default: now), unless one is
	 * already scheduled by then.
	 *
	 * @param int $at Unix time; 0 for now.
	 */
	public function kick( int $at = 0 ): void {
		$now = time();
		$at  = max( $at, $now );
		if ( function_exists( 'as_enqueue_async_action' ) && did_action( 'action_scheduler_init' ) ) {
			$next = as_next_scheduled_action( self::HOOK, array(), self::GROUP );
			if ( is_int( $next ) && $next <= $at ) {
				return; // A pending job runs by then (true: one is running, and may be past its last due receipt).
			}
			if ( $at <= $now ) {
				as_enqueue_async_action( self::HOOK, array(), self::GROUP );
			} else {
				as_schedule_single_action( $at, self::HOOK, array(), self::GROUP );
			}
			return;
		}
		foreach ( (array) _get_cron_array() as $ts => $hooks ) {
			if ( (int) $ts > $at ) {
				break; // Sorted by time.
			}
			if ( ! empty( $hooks[ self::HOOK ] ) ) {
				return; // A job runs by then.
			}
		}
		// Distinct args per time: WordPress refuses an identical single event within 10 minutes.
		wp_schedule_single_event( $at, self::HOOK, $at > $now ? array( $at ) : array() );
	}

	/**
	 * The job: dispatches due receipts, oldest first, within the batch and
	 * time budget, then schedules the next job when receipts remain.
	 */
	public function run(): void {
		$until = microtime( true ) + self::BUDGET;
		foreach ( $this->receipts->due( self::BATCH ) as $id ) {
			if ( microtime( true ) > $until ) {
				break;
			}
			$this->dispatch( $id );
		}
		$this->schedule_next();
	}

	/**
	 * The minutely check (from the outbox job): schedules a job when a
	 * receipt is due and no job is (a job lost with a deleted cron event or
	 * a purged queue, a runner that was killed).
	 */
	public function recover(): void {
		$this->schedule_next();
	}

	/**
	 * Makes a failed receipt due again (the plugin page's Replay).
	 *
	 * @param int $id Receipt id.
	 * @return bool Whether it was failed.
	 */
	public function replay( int $id ): bool {
		if ( ! $this->receipts->replay( $id ) ) {
			return false;
		}
		$this->kick();
		return true;
	}

	/**
	 * Dispatches one receipt, once, in one transaction.
	 *
	 * @param int $id Receipt id.
	 * @return string done, retry, failed, waiting (an earlier event about the same subject is pending) or skipped (not due, or another runner has it).
	 */
	public function dispatch( int $id ): string {
		$row = $this->receipts->get( $id );
		if ( null === $row ) {
			return 'skipped';
		}
		if ( $this->receipts->waits_for_earlier( $id, (string) $row['subject_key'] ) ) {
			return 'waiting';
		}
		$token = bin2hex( random_bytes( 16 ) );
		$row   = $this->receipts->claim( $id, $this->lease(), $token );
		if ( null === $row ) {
			return 'skipped';
		}
		$attempts = (int) $row['attempts'];
		if ( $attempts > count( $this->delays() ) + 1 ) {
			// Only attempts whose process was killed get here (the others end in retry()).
			$this->receipts->finish( $id, $token, 'failed', 0, sprintf( 'attempt %d: not run: the PHP process of every earlier attempt was killed before it finished (memory, time limit, OOM killer?)', $attempts ) );
			return 'failed';
		}
		$event = json_decode( $row['event'], true );
		if ( ! is_array( $event ) ) {
			$this->receipts->finish( $id, $token, 'failed', 0, 'stored event is not JSON' );
			return 'failed';
		}
		$event = self::current_layout( $event );
		$meta  = array(
			'receipt_id'      => $id,
			'idempotency_key' => $row['idempotency_key'],
			'trace_id'        => $row['trace_id'],
			'attempt'         => $attempts,
		);
		$label = sprintf( 'receipt_id=%d event_id=%s type=%s attempt=%d', $id, $event['id'] ?? '', $row['event_type'], $attempts );
		if ( $this->tx->begin( $label ) ) {
			$locked = $this->tx->lock_row( $this->receipts->lock_query( $id ) );
			if ( null === $locked || 'dispatching' !== $locked['status'] || ! hash_equals( $token, (string) $locked['claim_token'] ) ) {
				$this->tx->rollback();
				return 'skipped'; // Our lease expired before the lock, and another runner took it.
			}
		}
		$this->current = array(
			'id'       => $id,
			'token'    => $token,
			'attempts' => $attempts,
		);
		try {
			$this->fire( $event, $meta, (string) $row['event_type'] );
			$state = $this->tx->state();
			if ( 'lost' === $state ) {
				$this->tx->rollback();
				return $this->retry( $id, $token, $attempts, 'the transaction was rolled back inside a handler (deadlock or lock wait timeout)' );
			}
			if ( ! $this->receipts->finish( $id, $token, 'done', 0, '' ) ) {
				$this->tx->rollback();
				return 'skipped'; // No longer this attempt's receipt: nothing of it is committed.
			}
			if ( ! $this->tx->commit() ) {
				return $this->retry( $id, $token, $attempts, 'COMMIT failed' );
			}
			return 'done';
		} catch ( Throwable $e ) {
			$this->tx->rollback();
			$out = $this->retry( $id, $token, $attempts, get_class( $e ) . ': ' . $e->getMessage() );
			error_log( sprintf( 'wprelay: a wprelay_event action threw %s: %s (receipt_id=%d event_id=%s delivery_id=%s trace_id=%s type=%s attempt=%d): its writes were rolled back; %s', get_class( $e ), $e->getMessage(), $id, $event['id'] ?? '', $meta['idempotency_key'] ?? '', $meta['trace_id'] ?? '', $row['event_type'], $attempts, 'failed' === $out ? 'no attempts left, the receipt is failed (replay it from Tools → Webhook Relay)' : 'the receipt will be retried' ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			return $out;
		} finally {
			$this->current = null;
		}
	}

	/**
	 * Shutdown inside a dispatch (exit, fatal error): the transaction was
	 * rolled back; records the attempt.
	 *
	 * @param string $label What the log line names.
	 * @param string $why   What ended the process.
	 */
	public function abandoned( string $label, string $why ): void {
		if ( null === $this->current ) {
			return;
		}
		$c             = $this->current;
		$this->current = null;
		$this->retry( $c['id'], $c['token'], $c['attempts'], $why );
	}

	/**
	 * Runs the two actions.
	 *
	 * @param array  $event Envelope.
	 * @param array  $meta  receipt_id, idempotency_key, trace_id, attempt.
	 * @param string $type  Event type.
	 */
	private function fire( array $event, array $meta, string $type ): void {
		/**
		 * Fires once for every event the sidecar delivered to
		 * POST /wp-json/wprelay/v1/events, outside the delivery request
		 * (WP-Cron or Action Scheduler), inside a database transaction:
		 * what the handlers write through $wpdb commits together with the
		 * receipt, or is rolled back when a handler throws or the process
		 * dies, and the event is retried. Defer effects outside the
		 * database with wprelay_after_commit().
		 *
		 * @since 0.1.0
		 *
		 * @param array $event The canonical envelope: id, source, tenant, type,
		 *                     idempotency_key, occurred_at, received_at, actor,
		 *                     subject, action, data (the provider's object).
		 * @param array $meta  receipt_id, idempotency_key, trace_id, attempt (1 on the first).
		 */
		do_action( 'wprelay_event', $event, $meta );
		/**
		 * Fires once for every delivered event of one type, after
		 * wprelay_event, in the same transaction; e.g. `wprelay_event_invoice.paid`.
		 *
		 * @since 0.1.0
		 *
		 * @param array $event The canonical envelope.
		 * @param array $meta  receipt_id, idempotency_key, trace_id, attempt.
		 */
		do_action( 'wprelay_event_' . $type, $event, $meta );
	}

	/**
	 * Ends a failed attempt: stored again after the next delay, or failed
	 * when no delay is left; schedules the job for then.
	 *
	 * @param int    $id       Receipt id.
	 * @param string $token    The attempt's token.
	 * @param int    $attempts Attempts made, this one included.
	 * @param string $error    What went wrong.
	 * @return string retry or failed.
	 */
	private function retry( int $id, string $token, int $attempts, string $error ): string {
		$delays = $this->delays();
		$error  = sprintf( 'attempt %d: %s', $attempts, $error );
		if ( $attempts > count( $delays ) ) {
			$this->receipts->finish( $id, $token, 'failed', 0, $error );
			return 'failed';
		}
		$at = time() + $delays[ $attempts - 1 ];
		$this->receipts->finish( $id, $token, 'stored', $at, $error );
		$this->kick( $at );
		return 'retry';
	}

	/**
	 * Schedules the next job: now when a receipt is due, else at the next
	 * retry or lease expiry.
	 */
	private function schedule_next(): void {
		$next = $this->receipts->next_due();
		if ( $next > 0 ) {
			$this->kick( $next );
		}
	}

	/**
	 * The retry delays, from the filter.
	 *
	 * @return int[]
	 */
	private function delays(): array {
		/**
		 * Filters the delays (seconds) before the 2nd, 3rd, … attempt of a
		 * receipt whose handlers threw or died. After the last, the receipt
		 * is failed. Default 10, 60, 300, 1800, 7200 (six attempts in about
		 * two and a half hours).
		 *
		 * @since 0.2.0
		 *
		 * @param int[] $delays Seconds.
		 */
		$delays = array_values( array_map( 'intval', (array) apply_filters( 'wprelay_dispatch_retry_delays', self::DELAYS ) ) );
		return array_map( static fn( $d ) => max( 0, $d ), $delays );
	}

	/**
	 * The lease, from the filter.
	 *
	 * @return int Seconds.
	 */
	private function lease(): int {
		/**
		 * Filters how long (seconds) a runner's claim on a receipt holds.
		 * When a runner dies, its receipt is due again after this; a
		 * runner whose handlers take longer keeps the receipt (its row
		 * lock makes another runner wait), so this only bounds how late a
		 * killed dispatch is retried. Default 60.
		 *
		 * @since 0.2.0
		 *
		 * @param int $lease Seconds.
		 */
		return max( 1, (int) apply_filters( 'wprelay_dispatch_lease', self::LEASE ) );
	}

	/**
	 * Returns a stored event in the envelope layout of this version.
	 *
	 * Receipts stored by earlier versions hold envelopes whose `data` was the
	 * provider's whole body; since then it is the provider's object (a
	 * Stripe event's `data`, a WordPress event's `data`, a Standard Webhooks
	 * payload's `data`). The sidecar converts its own stored events the
	 * same way (relay.UpgradeEnvelope), so handlers see one layout.
	 *
	 * @param array $event A stored envelope.
	 * @return array
	 */
	public static function current_layout( array $event ): array {
		$type = isset( $event['type'] ) ? (string) $event['type'] : '';
		$body = isset( $event['data'] ) && is_array( $event['data'] ) ? $event['data'] : null;
		if ( null === $body || '' === $type || ! empty( $event['causation_id'] ) || ! array_key_exists( 'data', $body ) ) {
			return $event;
		}
		$str    = static function ( $name ) use ( $body ) {
			return isset( $body[ $name ] ) && is_string( $body[ $name ] ) ? $body[ $name ] : '';
		};
		$stripe = 'event' === $str( 'object' ) && $str( 'type' ) === $type && '' !== $str( 'id' );
		$wp     = $str( 'event_type' ) === $type && '' !== $str( 'idempotency_key' ) && is_array( $body['data'] );
		$std    = 3 === count( $body ) && $str( 'type' ) === $type && array_key_exists( 'timestamp', $body ) && null !== $body['data'];
		if ( $stripe || $wp || $std ) {
			$event['data'] = $body['data'];
		}
		return $event;
	}
}
