<?php
/**
 * WPRelay_Dispatcher: runs the wprelay_event actions off the request.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Runs `wprelay_event` and `wprelay_event_{type}` for each stored receipt,
 * outside the request that stored it: through Action Scheduler when it is
 * active, else a WP-Cron single event. A receipt is claimed (stored →
 * dispatching) before its actions run, so that two cron runners never run
 * them twice; a receipt whose dispatch was lost is picked up again by the
 * minutely outbox job.
 */
class WPRelay_Dispatcher {

	/** The cron / Action Scheduler hook that dispatches one receipt. */
	const HOOK = 'wprelay_dispatch';

	/** Seconds after which a stored receipt counts as lost and is rescheduled. */
	const LOST_AFTER = 300;

	/**
	 * Receipts store.
	 *
	 * @var WPRelay_Receipts
	 */
	private $receipts;

	/**
	 * Builds the dispatcher.
	 *
	 * @param WPRelay_Receipts $receipts Receipts store.
	 */
	public function __construct( WPRelay_Receipts $receipts ) {
		$this->receipts = $receipts;
	}

	/**
	 * Hooks the dispatch handler in.
	 */
	public function register_hooks(): void {
		add_action( self::HOOK, array( $this, 'run' ), 10, 1 );
	}

	/**
	 * Schedules the dispatch of a receipt, as soon as possible.
	 *
	 * @param int $receipt_id Receipt id.
	 */
	public function schedule( int $receipt_id ): void {
		if ( function_exists( 'as_enqueue_async_action' ) && did_action( 'action_scheduler_init' ) ) {
			as_enqueue_async_action( self::HOOK, array( $receipt_id ), 'wprelay' );
			return;
		}
		wp_schedule_single_event( time(), self::HOOK, array( $receipt_id ) );
	}

	/**
	 * Runs the actions of one receipt, once.
	 *
	 * @param int|string $receipt_id Receipt id.
	 */
	public function run( $receipt_id ): void {
		$id = (int) $receipt_id;
		if ( ! $this->receipts->transition( $id, 'stored', 'dispatching' ) ) {
			return; // Already dispatched, or being dispatched by another runner.
		}
		$row   = $this->receipts->get( $id );
		$event = is_array( $row ) ? json_decode( $row['event'], true ) : null;
		if ( ! is_array( $event ) ) {
			$this->receipts->transition( $id, 'dispatching', 'failed', 'stored event is not JSON' );
			return;
		}
		$event = self::current_layout( $event );
		$meta  = array(
			'receipt_id'      => $id,
			'idempotency_key' => $row['idempotency_key'],
			'trace_id'        => $row['trace_id'],
		);
		try {
			/**
			 * Fires once for every event the sidecar delivered to
			 * POST /wp-json/wprelay/v1/events, outside the delivery request
			 * (WP-Cron or Action Scheduler).
			 *
			 * @since 0.1.0
			 *
			 * @param array $event The canonical envelope: id, source, tenant, type,
			 *                     idempotency_key, occurred_at, received_at, actor,
			 *                     subject, action, data (the provider's object).
			 * @param array $meta  receipt_id, idempotency_key, trace_id.
			 */
			do_action( 'wprelay_event', $event, $meta );
			/**
			 * Fires once for every delivered event of one type, after
			 * wprelay_event; e.g. `wprelay_event_invoice.paid`.
			 *
			 * @since 0.1.0
			 *
			 * @param array $event The canonical envelope.
			 * @param array $meta  receipt_id, idempotency_key, trace_id.
			 */
			do_action( 'wprelay_event_' . $row['event_type'], $event, $meta );
			$this->receipts->transition( $id, 'dispatching', 'done' );
		} catch ( Throwable $e ) {
			$this->receipts->transition( $id, 'dispatching', 'failed', get_class( $e ) . ': ' . $e->getMessage() );
			error_log( sprintf( 'wprelay: a wprelay_event action threw %s (receipt_id=%d event_id=%s delivery_id=%s trace_id=%s type=%s)', get_class( $e ), $id, $event['id'] ?? '', $meta['idempotency_key'] ?? '', $meta['trace_id'] ?? '', $row['event_type'] ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
		}
	}

	/**
	 * Reschedules receipts whose dispatch was lost (a cron event deleted, a
	 * queue purged). A receipt whose runner died while its actions ran stays
	 * "dispatching": actions run at most once per receipt.
	 */
	public function recover(): void {
		foreach ( $this->receipts->stuck( 'stored', self::LOST_AFTER, 50 ) as $id ) {
			$this->schedule( $id );
		}
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
