<?php
/**
 * WPRelay_Http_Allowance: lets wp_safe_remote_*() reach the sidecar, and
 * nothing else that it refuses.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * WordPress's safe HTTP functions refuse loopback and private addresses
 * (unless the host is the site's own) and every port but 80, 443 and 8080:
 * the classic reason WordPress webhooks to a local sidecar "never arrive".
 *
 * This class opens exactly one door: the host and port of
 * WPRELAY_SIDECAR_URL, through `http_request_host_is_external` and
 * `http_allowed_safe_ports`. Another host, or the sidecar's host on another
 * port, is still refused.
 */
class WPRelay_Http_Allowance {

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Builds the allowance.
	 *
	 * @param WPRelay_Config $config Settings.
	 */
	public function __construct( WPRelay_Config $config ) {
		$this->config = $config;
	}

	/**
	 * Hooks the two filters in.
	 */
	public function register_hooks(): void {
		add_filter( 'http_request_host_is_external', array( $this, 'host_is_external' ), 10, 3 );
		add_filter( 'http_allowed_safe_ports', array( $this, 'allowed_ports' ), 10, 3 );
	}

	/**
	 * Allows the sidecar's host when the URL is on the sidecar's port.
	 *
	 * @param bool   $external Whether WordPress treats the host as external.
	 * @param string $host     Host of the requested URL.
	 * @param string $url      Requested URL.
	 * @return bool
	 */
	public function host_is_external( $external, $host, $url ) {
		if ( $external ) {
			return $external;
		}
		return $this->is_sidecar( (string) $host, (string) $url );
	}

	/**
	 * Adds the sidecar's port for URLs on the sidecar's host.
	 *
	 * @param array  $ports Allowed ports.
	 * @param string $host  Host of the requested URL.
	 * @param string $url   Requested URL.
	 * @return array
	 */
	public function allowed_ports( $ports, $host, $url ) {
		$sidecar = $this->sidecar();
		if ( null !== $sidecar && $this->is_sidecar( (string) $host, (string) $url ) && is_array( $ports ) ) {
			$ports[] = $sidecar['port'];
		}
		return $ports;
	}

	/**
	 * Tells whether $url is on the sidecar's host and port.
	 *
	 * @param string $host Host as WordPress parsed it.
	 * @param string $url  The URL.
	 * @return bool
	 */
	public function is_sidecar( string $host, string $url ): bool {
		$sidecar = $this->sidecar();
		$parts   = wp_parse_url( $url );
		if ( null === $sidecar || ! is_array( $parts ) || empty( $parts['host'] ) ) {
			return false;
		}
		$scheme = strtolower( $parts['scheme'] ?? '' );
		$port   = isset( $parts['port'] ) ? (int) $parts['port'] : ( 'https' === $scheme ? 443 : 80 );
		return strtolower( trim( $host, '.' ) ) === $sidecar['host']
			&& strtolower( trim( $parts['host'], '.' ) ) === $sidecar['host']
			&& $scheme === $sidecar['scheme']
			&& $port === $sidecar['port'];
	}

	/**
	 * Returns the sidecar's scheme, host and port, or null when
	 * WPRELAY_SIDECAR_URL is not set or not an http(s) URL.
	 *
	 * @return array{scheme:string,host:string,port:int}|null
	 */
	private function sidecar(): ?array {
		$parts = wp_parse_url( $this->config->sidecar_url() );
		if ( ! is_array( $parts ) || empty( $parts['host'] ) || ! in_array( strtolower( $parts['scheme'] ?? '' ), array( 'http', 'https' ), true ) ) {
			return null;
		}
		$scheme = strtolower( $parts['scheme'] );
		return array(
			'scheme' => $scheme,
			'host'   => strtolower( trim( $parts['host'], '.' ) ),
			'port'   => isset( $parts['port'] ) ? (int) $parts['port'] : ( 'https' === $scheme ? 443 : 80 ),
		);
	}
}
