<?php
/**
 * Public functions for other plugins and themes.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

if ( ! function_exists( 'wprelay_emit' ) ) {
	/**
	 * Emits an event to the sidecar: writes an outbox row now and sends it
	 * after the response (retried from WP-Cron while the sidecar is down).
	 *
	 * Example:
	 *
	 *     $key = wprelay_emit( 'lead.created', 'lead:42', array( 'email' => $email ) );
	 *     if ( is_wp_error( $key ) ) { error_log( $key->get_error_message() ); }
	 *
	 * @since 0.1.0
	 *
	 * @param string $type       Event type: "word.word" or "word.word.word" (a-z, 0-9, _).
	 * @param string $object_ref What it is about, e.g. "post:123" (at most 191 characters).
	 * @param array  $data       Event data, sent as a JSON object.
	 * @return string|WP_Error The event's idempotency key (UUIDv4), or why it was not emitted.
	 */
	function wprelay_emit( $type, $object_ref, $data = array() ) {
		$plugin = isset( $GLOBALS['wprelay'] ) ? $GLOBALS['wprelay'] : null;
		if ( ! $plugin instanceof WPRelay_Plugin ) {
			return new WP_Error( 'wprelay_not_loaded', __( 'Webhook Relay is not loaded.', 'wprelay' ) );
		}
		return $plugin->emitter()->emit( (string) $type, (string) $object_ref, (array) $data );
	}
}
