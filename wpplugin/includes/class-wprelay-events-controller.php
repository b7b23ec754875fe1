<?php
/**
 * WPRelay_Events_Controller: POST /wp-json/wprelay/v1/events.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Receives the sidecar's deliveries: stores each once (202), answers a
 * repeated one with 200 {"duplicate":true}, and runs the wprelay_event
 * actions later, off the request.
 */
class WPRelay_Events_Controller extends WPRelay_REST_Controller {

	/**
	 * Dispatcher.
	 *
	 * @var WPRelay_Dispatcher
	 */
	private $dispatcher;

	/**
	 * Builds the controller.
	 *
	 * @param WPRelay_Request_Verifier $verifier   Request verifier.
	 * @param WPRelay_Receipts         $receipts   Receipts store.
	 * @param WPRelay_Rate_Limiter     $limiter    Rate limiter.
	 * @param WPRelay_Dispatcher       $dispatcher Dispatcher.
	 */
	public function __construct( WPRelay_Request_Verifier $verifier, WPRelay_Receipts $receipts, WPRelay_Rate_Limiter $limiter, WPRelay_Dispatcher $dispatcher ) {
		parent::__construct( $verifier, $receipts, $limiter );
		$this->rest_base  = 'events';
		$this->dispatcher = $dispatcher;
	}

	/**
	 * Stores a delivered event and schedules its actions.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public function create_item( $request ) {
		$event = $this->envelope( $request );
		$id    = $this->store_receipt( $request, $event, 'stored', $this->subject_key( $event ) );
		if ( is_wp_error( $id ) ) {
			return $id;
		}
		if ( null === $id ) {
			return $this->duplicate( (string) $request->get_header( 'idempotency_key' ) );
		}
		$this->dispatcher->kick();
		/**
		 * Fires in the delivery request, right after a new event was stored
		 * and before the 202 answer. Keep it fast; do the work in
		 * wprelay_event, which runs off the request.
		 *
		 * @since 0.1.0
		 *
		 * @param array $event      The canonical envelope.
		 * @param int   $receipt_id Receipt id.
		 */
		do_action( 'wprelay_received', $event, $id );
		return new WP_REST_Response(
			array(
				'status'    => 'queued',
				'duplicate' => false,
				'receipt'   => $id,
			),
			202
		);
	}

	/**
	 * The key that orders a subject's events: source, tenant, subject type
	 * and id; '' (no order kept) when the envelope names no subject id.
	 *
	 * @param array $event The envelope.
	 * @return string
	 */
	private function subject_key( array $event ): string {
		$subject = isset( $event['subject'] ) && is_array( $event['subject'] ) ? $event['subject'] : array();
		if ( '' === (string) ( $subject['id'] ?? '' ) ) {
			return '';
		}
		$key = implode( "\x1f", array( $event['source'] ?? '', $event['tenant'] ?? '', $subject['type'] ?? '', $subject['id'] ) );
		return strlen( $key ) > 191 ? 'sha256:' . hash( 'sha256', $key ) : $key;
	}
}
