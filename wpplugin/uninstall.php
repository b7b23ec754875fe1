<?php
/**
 * Uninstall: drops the plugin's tables, options, cron jobs and the result
 * posts. Names come from the class constants that created them.
 *
 * @package WPRelay
 */

if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
	exit;
}

require_once __DIR__ . '/includes/class-wprelay-schema.php';
require_once __DIR__ . '/includes/class-wprelay-sender.php';
require_once __DIR__ . '/includes/class-wprelay-dispatcher.php';
require_once __DIR__ . '/includes/class-wprelay-rest-controller.php';
require_once __DIR__ . '/includes/class-wprelay-results-controller.php';
require_once __DIR__ . '/includes/class-wprelay-retention.php';

/**
 * Removes the plugin's tables, options, cron jobs, result posts and
 * capabilities from the current site.
 */
function wprelay_uninstall_site() {
	global $wpdb;

	( new WPRelay_Schema( $wpdb ) )->drop();
	foreach ( WPRelay_Schema::OPTIONS as $wprelay_option ) {
		delete_option( $wprelay_option );
	}
	$wpdb->query( $wpdb->prepare( "DELETE FROM {$wpdb->options} WHERE option_name LIKE %s", $wpdb->esc_like( WPRelay_Schema::RATE_OPTION_PREFIX ) . '%' ) ); // phpcs:ignore WordPress.DB.DirectDatabaseQuery.DirectQuery, WordPress.DB.DirectDatabaseQuery.NoCaching -- uninstall deletes the rate limiter's options by prefix; nothing to cache.
	wp_clear_scheduled_hook( WPRelay_Sender::CRON_HOOK );
	wp_unschedule_hook( WPRelay_Dispatcher::HOOK );
	wp_unschedule_hook( WPRelay_Retention::CRON_HOOK );
	wp_unschedule_hook( WPRelay_Sender::RETRY_HOOK );

	$wprelay_results = get_posts(
		array(
			'post_type'      => WPRelay_Results_Controller::POST_TYPE,
			'post_status'    => 'any',
			'fields'         => 'ids',
			'posts_per_page' => -1,
		)
	);
	foreach ( $wprelay_results as $wprelay_result_id ) {
		wp_delete_post( $wprelay_result_id, true );
	}
	foreach ( array( 'post', 'user', 'comment' ) as $wprelay_meta_type ) {
		delete_metadata( $wprelay_meta_type, 0, WPRelay_Results_Controller::META_RESULT_ID, '', true );
	}
	WPRelay_Results_Controller::revoke_caps();
}

// On a network, every site has its own tables (network activation, or
// activation in some sites): remove them all.
if ( is_multisite() ) {
	foreach ( get_sites(
		array(
			'fields' => 'ids',
			'number' => 0,
		)
	) as $wprelay_site_id ) {
		switch_to_blog( (int) $wprelay_site_id );
		wprelay_uninstall_site();
		restore_current_blog();
	}
} else {
	wprelay_uninstall_site();
}
