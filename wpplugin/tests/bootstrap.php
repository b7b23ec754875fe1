<?php
/**
 * PHPUnit bootstrap for the pure classes: no WordPress is loaded.
 *
 * @package WPRelay
 */

define( 'WPRELAY_CRYPTO_STANDALONE', true );
require_once dirname( __DIR__ ) . '/includes/class-wprelay-crypto-exception.php';
require_once dirname( __DIR__ ) . '/includes/class-wprelay-crypto.php';
if ( ! defined( 'ABSPATH' ) ) {
	define( 'ABSPATH', __DIR__ . '/' ); // only for files that guard on it, such as the dispatcher's.
}
require_once dirname( __DIR__ ) . '/includes/class-wprelay-dispatcher.php';
require_once dirname( __DIR__ ) . '/includes/class-wprelay-transaction.php';

/**
 * Returns testdata/wp/fixtures.json, made by the Go side with golang-jwt
 * and the standard-webhooks library (cmd/wprelay/wp_fixtures_test.go).
 *
 * @return array
 */
function wprelay_test_fixtures(): array {
	static $fixtures = null;
	if ( null === $fixtures ) {
		$path     = dirname( __DIR__, 2 ) . '/testdata/wp/fixtures.json';
		$fixtures = json_decode( (string) file_get_contents( $path ), true );
		if ( ! is_array( $fixtures ) ) {
			throw new RuntimeException( "cannot read $path" );
		}
	}
	return $fixtures;
}
