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

if ( ! function_exists( 'wprelay_after_commit' ) ) {
	/**
	 * Runs $callback once the wprelay_event handlers' transaction has committed;
	 * drops it when the transaction rolls back (a handler threw or the
	 * process died, and the event will be retried). Outside a dispatch,
	 * runs $callback at once.
	 *
	 * Use it for effects the database cannot roll back: mail, HTTP calls,
	 * files. They run at most once per event: a process that dies right
	 * after the commit loses them. For an effect that must happen at least
	 * once, write it to the database in the handler (wprelay_emit() does:
	 * its outbox row commits with the event) and send it from there.
	 *
	 * Example:
	 *
	 *     add_action( 'wprelay_event_invoice.paid', function ( $event ) {
	 *         $email = $event['data']['object']['customer_email'];
	 *         wprelay_after_commit( function () use ( $email ) {
	 *             wp_mail( $email, 'Thank you', 'Your invoice is paid.' );
	 *         } );
	 *     } );
	 *
	 * @since 0.2.0
	 *
	 * @param callable $callback Work to run after the commit.
	 * @return bool Whether $callback was deferred (false: it ran now, or the plugin is not loaded).
	 */
	function wprelay_after_commit( callable $callback ) {
		$plugin = isset( $GLOBALS['wprelay'] ) ? $GLOBALS['wprelay'] : null;
		if ( ! $plugin instanceof WPRelay_Plugin ) {
			call_user_func( $callback );
			return false;
		}
		$deferred = $plugin->transaction()->is_open();
		$plugin->transaction()->after_commit( $callback );
		return $deferred;
	}
}
