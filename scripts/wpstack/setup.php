<?php
/**
 * Activates the plugin under test, flushes rewrite rules, makes an
 * Application Password for the admin and the table the test mu-plugin
 * records actions in. Prints the application password.
 * Usage: php setup.php SITE_ROOT HOST:PORT PLUGIN_FILE
 *
 * @package WPRelay
 */

if ( PHP_SAPI !== 'cli' || $argc < 4 ) {
	fwrite( STDERR, "usage: php setup.php SITE_ROOT HOST:PORT PLUGIN_FILE\n" );
	exit( 2 );
}
$_SERVER['HTTP_HOST']   = $argv[2];
$_SERVER['SERVER_NAME'] = strtok( $argv[2], ':' );
$_SERVER['REQUEST_URI'] = '/';
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

global $wpdb;
dbDelta(
	"CREATE TABLE {$wpdb->prefix}wpstack_actions (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  hook varchar(191) NOT NULL,
  event_id varchar(64) NOT NULL DEFAULT '',
  event_type varchar(191) NOT NULL DEFAULT '',
  idempotency_key varchar(191) NOT NULL DEFAULT '',
  receipt_id bigint(20) unsigned NOT NULL DEFAULT 0,
  at datetime NOT NULL,
  PRIMARY KEY  (id),
  KEY event_id (event_id)
) {$wpdb->get_charset_collate()};"
);

wp_set_current_user( 1 );
$wpstack_res = activate_plugin( $argv[3] );
if ( is_wp_error( $wpstack_res ) ) {
	fwrite( STDERR, 'activate_plugin: ' . $wpstack_res->get_error_message() . "\n" );
	exit( 1 );
}
if ( ! is_plugin_active( $argv[3] ) ) {
	fwrite( STDERR, "plugin not active after activate_plugin\n" );
	exit( 1 );
}
flush_rewrite_rules( false );
list( $wpstack_app_pass ) = WP_Application_Passwords::create_new_application_password( 1, array( 'name' => 'wpstack' ) );
echo $wpstack_app_pass, "\n"; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped
