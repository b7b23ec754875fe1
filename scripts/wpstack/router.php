<?php
/**
 * Router for `php -S`: serves existing files as they are and sends every
 * other path to WordPress's front controller (pretty permalinks, /wp-json/,
 * and paths with a dot such as /robots.txt that the built-in server would
 * otherwise answer with its own 404).
 *
 * @package WPRelay
 */

$wpstack_root = rtrim( $_SERVER['DOCUMENT_ROOT'], '/' );
$wpstack_path = urldecode( (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );
$wpstack_file = $wpstack_root . $wpstack_path;
if ( is_file( $wpstack_file ) ) {
	return false;
}
if ( is_dir( $wpstack_file ) && is_file( rtrim( $wpstack_file, '/' ) . '/index.php' ) ) {
	if ( substr( $wpstack_path, -1 ) !== '/' ) {
		header( 'Location: ' . $wpstack_path . '/', true, 301 );
		return true;
	}
	return false;
}
$_SERVER['SCRIPT_NAME']     = '/index.php';
$_SERVER['PHP_SELF']        = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $wpstack_root . '/index.php';
chdir( $wpstack_root );
require $wpstack_root . '/index.php';
