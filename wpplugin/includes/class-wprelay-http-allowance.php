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
 * This class opens exactly two doors: the scheme, host and port of
 * WPRELAY_SIDECAR_URL (events) and of WPRELAY_ADMIN_URL (the admin page),
 * through `http_request_host_is_external` and `http_allowed_safe_ports`.
 * Another host, or one of these hosts on another port, is still refused.
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
		$endpoint = $this->endpoint_of( (string) $host, (string) $url );
		if ( null !== $endpoint && is_array( $ports ) ) {
			$ports[] = $endpoint['port'];
		}
		return $ports;
	}

	/**
	 * Tells whether $url is on the scheme, host and port of the sidecar's
	 * public listener or of its admin API.
	 *
	 * @param string $host Host as WordPress parsed it.
	 * @param string $url  The URL.
	 * @return bool
	 */
	public function is_sidecar( string $host, string $url ): bool {
		return null !== $this->endpoint_of( $host, $url );
	}

	/**
	 * Returns the endpoint (sidecar or admin) that $url is on, or null.
	 *
	 * @param string $host Host as WordPress parsed it.
	 * @param string $url  The URL.
	 * @return array{scheme:string,host:string,port:int}|null
	 */
	private function endpoint_of( string $host, string $url ): ?array {
		$target = self::endpoint( $url );
		if ( null === $target || strtolower( trim( $host, '.' ) ) !== $target['host'] ) {
			return null;
		}
		foreach ( array( $this->config->sidecar_url(), $this->config->get( 'WPRELAY_ADMIN_URL' ) ) as $allowed ) {
			$endpoint = self::endpoint( $allowed );
			if ( null !== $endpoint && $endpoint === $target ) {
				return $endpoint;
			}
		}
		return null;
	}

	/**
	 * Returns a URL's scheme, host and port (the default port of its scheme
	 * when it names none), or null when it is not an http(s) URL.
	 *
	 * @param string $url URL.
	 * @return array{scheme:string,host:string,port:int}|null
	 */
	private static function endpoint( string $url ): ?array {
		$parts = wp_parse_url( $url );
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
