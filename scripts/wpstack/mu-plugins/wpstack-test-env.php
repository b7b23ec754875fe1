<?php
/**
 * Plugin Name: wpstack test environment
 * Description: Test-only. Records every wprelay_event / wprelay_event_{type}
 * action run (table {prefix}wpstack_actions), catches outbound mail
 * (wp-content/mail.log), logs outbound HTTP attempts, and can make the
 * first delivery of an event slow (option wpstack_slow_first = seconds) so
 * that the sidecar times out and retries.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

// Record the actions the plugin runs for delivered events.
add_action(
	'all',
	static function () {
		$hook = current_filter();
		if ( 'wprelay_event' !== $hook && 0 !== strncmp( $hook, 'wprelay_event_', 14 ) ) {
			return;
		}
		$args  = func_get_args();
		$event = isset( $args[1] ) && is_array( $args[1] ) ? $args[1] : array();
		$meta  = isset( $args[2] ) && is_array( $args[2] ) ? $args[2] : array();
		global $wpdb;
		$wpdb->insert(
			$wpdb->prefix . 'wpstack_actions',
			array(
				'hook'            => $hook,
				'event_id'        => (string) ( $event['id'] ?? '' ),
				'event_type'      => (string) ( $event['type'] ?? '' ),
				'idempotency_key' => (string) ( $meta['idempotency_key'] ?? '' ),
				'receipt_id'      => (int) ( $meta['receipt_id'] ?? 0 ),
				'at'              => gmdate( 'Y-m-d H:i:s' ),
			)
		);
	}
);

// Make the first delivery of each event slow, after it was stored.
add_action(
	'wprelay_received',
	static function ( $event ) {
		$seconds = (float) get_option( 'wpstack_slow_first', 0 );
		if ( $seconds > 0 && add_option( 'wpstack_slow_seen_' . md5( (string) ( $event['id'] ?? '' ) ), '1', '', 'no' ) ) {
			usleep( (int) ( $seconds * 1e6 ) );
		}
	}
);

// No mail leaves the test site.
add_filter(
	'pre_wp_mail',
	static function ( $null, $atts ) {
		file_put_contents( WP_CONTENT_DIR . '/mail.log', wp_json_encode( $atts ) . "\n", FILE_APPEND ); // phpcs:ignore WordPress.WP.AlternativeFunctions.file_system_operations_file_put_contents
		return true;
	},
	10,
	2
);

// Log every outbound HTTP attempt (WP_HTTP_BLOCK_EXTERNAL refuses all but loopback).
add_filter(
	'pre_http_request',
	static function ( $pre, $args, $url ) {
		error_log( '[wpstack] outbound HTTP attempt: ' . preg_replace( '/\?.*$/', '', (string) $url ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
		return $pre;
	},
	0,
	3
);

// Nothing from s.w.org in pages.
remove_action( 'wp_head', 'print_emoji_detection_script', 7 );
remove_action( 'admin_print_scripts', 'print_emoji_detection_script' );
remove_action( 'wp_print_styles', 'print_emoji_styles' );
remove_action( 'admin_print_styles', 'print_emoji_styles' );

// Test knobs kept in options, so a test can set them with one query.
add_filter(
	'wprelay_rate_limit',
	static function ( $limit ) {
		$override = get_option( 'wpstack_rate_limit', '' );
		return '' === $override ? $limit : (int) $override;
	}
);
add_filter(
	'wprelay_user_sync_roles',
	static function ( $roles ) {
		$override = get_option( 'wpstack_user_sync_roles', '' );
		return '' === $override ? $roles : explode( ',', $override );
	}
);
add_filter(
	'wprelay_should_emit',
	static function ( $emit ) {
		return get_option( 'wpstack_emit_off', '' ) ? false : $emit;
	}
);
add_filter(
	'wprelay_retention_days',
	static function ( $days ) {
		$override = get_option( 'wpstack_retention_days', '' );
		return '' === $override ? $days : array_merge( $days, json_decode( $override, true ) );
	}
);
add_filter(
	'wprelay_retention_batch',
	static function ( $batch ) {
		$override = get_option( 'wpstack_retention_batch', '' );
		return '' === $override ? $batch : (int) $override;
	}
);

// Docs that run: with the option wpstack_readme_examples set, the
// wprelay_event_{type} example of the plugin's readme.txt is loaded as
// written (my_user_for_customer, which it calls, answers the option
// wpstack_readme_user, default 1).
if ( get_option( 'wpstack_readme_examples', '' ) ) {
	if ( ! function_exists( 'my_user_for_customer' ) ) {
		/**
		 * The readme example's lookup of a customer's user.
		 *
		 * @param mixed $customer A Stripe customer id.
		 * @return int
		 */
		function my_user_for_customer( $customer ): int { // phpcs:ignore Generic.CodeAnalysis.UnusedFunctionParameter.Found
			return (int) get_option( 'wpstack_readme_user', 1 );
		}
	}
	$wpstack_readme = (string) file_get_contents( WP_PLUGIN_DIR . '/wprelay/readme.txt' );
	if ( preg_match( '/^= Action: wprelay_event_\{type\}.*?=\n(.*?)^= /ms', $wpstack_readme, $wpstack_m ) ) {
		$wpstack_code = array();
		foreach ( explode( "\n", $wpstack_m[1] ) as $wpstack_line ) {
			if ( 0 === strpos( $wpstack_line, '    ' ) ) {
				$wpstack_code[] = substr( $wpstack_line, 4 );
			}
		}
		eval( implode( "\n", $wpstack_code ) ); // phpcs:ignore Squiz.PHP.Eval.Discouraged -- the readme's example, run as written.
	}
}
