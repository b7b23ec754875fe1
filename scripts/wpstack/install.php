<?php
/**
 * Installs WordPress non-interactively (no wp-cli).
 * Usage: php install.php SITE_ROOT HOST:PORT ADMIN_USER ADMIN_PASS
 *
 * @package WPRelay
 */

if ( PHP_SAPI !== 'cli' || $argc < 5 ) {
	fwrite( STDERR, "usage: php install.php SITE_ROOT HOST:PORT ADMIN_USER ADMIN_PASS\n" );
	exit( 2 );
}
$_SERVER['HTTP_HOST']       = $argv[2];
$_SERVER['SERVER_NAME']     = strtok( $argv[2], ':' );
$_SERVER['REQUEST_URI']     = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
define( 'WP_INSTALLING', true );
require $argv[1] . '/wp-load.php';
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

$wpstack_result = wp_install( 'wprelay test site', $argv[3], 'admin@example.test', false, '', wp_slash( $argv[4] ) );
if ( is_wp_error( $wpstack_result ) || empty( $wpstack_result['user_id'] ) ) {
	fwrite( STDERR, "wp_install failed\n" );
	exit( 1 );
}
update_option( 'show_avatars', 0 );
update_option( 'permalink_structure', '/%postname%/' );
echo "installed\n";
