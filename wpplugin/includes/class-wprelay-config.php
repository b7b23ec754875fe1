<?php
/**
 * WPRelay_Config: the wp-config.php constants the plugin reads.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Reads wprelay's settings from wp-config.php constants, never from options.
 *
 * Secrets are returned only to the code that signs or verifies with them;
 * nothing here prints or logs them. `status()` tells the admin page which
 * constants are set without their values.
 */
class WPRelay_Config {

	/** Constants the plugin needs (DESIGN.md). */
	const REQUIRED = array(
		'WPRELAY_SIDECAR_URL',
		'WPRELAY_SOURCE',
		'WPRELAY_SITE_JWT_SECRET',
		'WPRELAY_SITE_SIGNING_SECRET',
		'WPRELAY_WP_JWT_SECRET',
		'WPRELAY_WP_SIGNING_SECRET',
		'WPRELAY_ADMIN_URL',
		'WPRELAY_ADMIN_TOKEN',
	);

	/** Optional constants: a public key for RS256/EdDSA, an audience override. */
	const OPTIONAL = array( 'WPRELAY_WP_PUBLIC_KEY', 'WPRELAY_AUDIENCE' );

	/**
	 * Returns a constant's value, or '' when it is not defined.
	 *
	 * @param string $name Constant name.
	 * @return string
	 */
	public function get( string $name ): string {
		return defined( $name ) ? trim( (string) constant( $name ) ) : '';
	}

	/**
	 * Tells which constants are set, without their values.
	 *
	 * @return array<string,bool> Constant name => whether it is set.
	 */
	public function status(): array {
		$out = array();
		foreach ( array_merge( self::REQUIRED, self::OPTIONAL ) as $name ) {
			$out[ $name ] = '' !== $this->get( $name );
		}
		return $out;
	}

	/**
	 * Returns the sidecar's base URL without a trailing slash.
	 *
	 * @return string
	 */
	public function sidecar_url(): string {
		return rtrim( $this->get( 'WPRELAY_SIDECAR_URL' ), '/' );
	}

	/**
	 * Returns the URL events are sent to: {sidecar}/hooks/{source}.
	 *
	 * @return string '' when the sidecar URL or the source is not set.
	 */
	public function hook_url(): string {
		$base   = $this->sidecar_url();
		$source = $this->get( 'WPRELAY_SOURCE' );
		if ( '' === $base || '' === $source ) {
			return '';
		}
		return $base . '/hooks/' . rawurlencode( $source );
	}

	/**
	 * Returns the site's origin (scheme://host[:port]).
	 *
	 * @return string
	 */
	public function site_origin(): string {
		return self::origin( home_url() );
	}

	/**
	 * Returns the site URL without a trailing slash (home_url(), path
	 * included for a site in a subfolder): the issuer of the tokens the
	 * plugin signs, which the sidecar's source must name as its issuer.
	 *
	 * @return string
	 */
	public function site_url(): string {
		return untrailingslashit( home_url() );
	}

	/**
	 * Returns the audiences the sidecar's tokens may name: WPRELAY_AUDIENCE
	 * when set, else the site's origin (also spelled with its default port).
	 *
	 * @return string[]
	 */
	public function audiences(): array {
		$aud = $this->get( 'WPRELAY_AUDIENCE' );
		if ( '' !== $aud ) {
			return array( rtrim( $aud, '/' ) );
		}
		$origin = $this->site_origin();
		$parts  = wp_parse_url( $origin );
		$out    = array( $origin );
		if ( is_array( $parts ) && empty( $parts['port'] ) && isset( $parts['scheme'], $parts['host'] ) ) {
			$out[] = $origin . ( 'https' === $parts['scheme'] ? ':443' : ':80' );
		}
		return $out;
	}

	/**
	 * Returns the keys that may sign the sidecar's tokens, by algorithm:
	 * HS256 with WPRELAY_WP_JWT_SECRET, and RS256 or EdDSA (by key type)
	 * with WPRELAY_WP_PUBLIC_KEY.
	 *
	 * @param WPRelay_Crypto $crypto Used to tell the public key's type.
	 * @return array<string,string>
	 */
	public function inbound_keys( WPRelay_Crypto $crypto ): array {
		$keys   = array();
		$secret = $this->get( 'WPRELAY_WP_JWT_SECRET' );
		if ( '' !== $secret ) {
			$keys['HS256'] = $secret;
		}
		$pem = $this->get( 'WPRELAY_WP_PUBLIC_KEY' );
		if ( '' !== $pem ) {
			$alg = $crypto->public_key_algorithm( $pem );
			if ( '' !== $alg ) {
				$keys[ $alg ] = $pem;
			}
		}
		return $keys;
	}

	/**
	 * Returns the secrets that may sign the sidecar's requests (Standard
	 * Webhooks). WPRELAY_WP_SIGNING_SECRET may hold several, separated by
	 * spaces, while a secret is rotated.
	 *
	 * @return string[]
	 */
	public function inbound_signing_secrets(): array {
		return array_values( array_filter( preg_split( '/\s+/', $this->get( 'WPRELAY_WP_SIGNING_SECRET' ) ) ) );
	}

	/**
	 * Returns scheme://host[:port] of a URL, lower-cased, without a default
	 * port.
	 *
	 * @param string $url URL.
	 * @return string
	 */
	public static function origin( string $url ): string {
		$p = wp_parse_url( $url );
		if ( ! is_array( $p ) || empty( $p['host'] ) ) {
			return '';
		}
		$scheme = strtolower( $p['scheme'] ?? 'http' );
		$port   = isset( $p['port'] ) ? (int) $p['port'] : 0;
		$origin = $scheme . '://' . strtolower( $p['host'] );
		if ( $port && ! ( 'http' === $scheme && 80 === $port ) && ! ( 'https' === $scheme && 443 === $port ) ) {
			$origin .= ':' . $port;
		}
		return $origin;
	}
}
