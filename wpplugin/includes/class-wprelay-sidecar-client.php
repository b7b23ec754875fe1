<?php
/**
 * WPRelay_Sidecar_Client: the sidecar's admin API, for wp-admin.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Calls the sidecar's admin API (WPRELAY_ADMIN_URL, bearer
 * WPRELAY_ADMIN_TOKEN) with wp_safe_remote_request(), which refuses
 * loopback and private hosts and odd ports unless WPRelay_Http_Allowance
 * lets exactly the admin URL's host and port through; and checks that the
 * site can reach the sidecar's public listener the way events are sent.
 *
 * Errors are WP_Error objects whose code says what went wrong, so that the
 * admin page can say what to do: wprelay_not_configured,
 * wprelay_url_refused, wprelay_unreachable, wprelay_unauthorized, or
 * wprelay_api_{code} for the API's own error codes (not_found,
 * nothing_to_replay, bad_request, unavailable, ...).
 */
class WPRelay_Sidecar_Client {

	/** Seconds one admin API call may take. */
	const TIMEOUT = 5;

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * The Date header of the last answer of the admin API (Unix time), and
	 * the local time it was received at; null before any answer.
	 *
	 * @var array{int,int}|null
	 */
	private $last_date = null;

	/**
	 * Builds the client.
	 *
	 * @param WPRelay_Config $config Settings.
	 */
	public function __construct( WPRelay_Config $config ) {
		$this->config = $config;
	}

	/**
	 * Lists events, newest first.
	 *
	 * @param array $filters status, source, tenant, type, since, until, limit, cursor.
	 * @return array|WP_Error {"events":[...],"next_cursor":""}
	 */
	public function events( array $filters ) {
		return $this->call( 'GET', '/admin/v1/events' . $this->query( $filters ) );
	}

	/**
	 * Returns one event with its deliveries, attempts, envelope and the
	 * events it caused.
	 *
	 * @param string $id Event id.
	 * @return array|WP_Error
	 */
	public function event( string $id ) {
		return $this->call( 'GET', '/admin/v1/events/' . rawurlencode( $id ) );
	}

	/**
	 * Returns an event's raw request (credentials redacted by the sidecar).
	 *
	 * @param string $id Event id.
	 * @return array|WP_Error
	 */
	public function raw( string $id ) {
		return $this->call( 'GET', '/admin/v1/events/' . rawurlencode( $id ) . '/raw' );
	}

	/**
	 * Replays one event (every delivery, or the one to $target).
	 *
	 * @param string $id     Event id.
	 * @param string $target Target name, or '' for all.
	 * @return array|WP_Error {"status":"replaying","replayed":n}
	 */
	public function replay( string $id, string $target = '' ) {
		$path = '/admin/v1/events/' . rawurlencode( $id ) . '/replay';
		if ( '' !== $target ) {
			$path .= '?target=' . rawurlencode( $target );
		}
		return $this->call( 'POST', $path );
	}

	/**
	 * Lists dead deliveries, most recently dead first.
	 *
	 * @param array $filters source, target, since, limit, cursor.
	 * @return array|WP_Error {"deliveries":[...],"next_cursor":""}
	 */
	public function dead_letters( array $filters ) {
		return $this->call( 'GET', '/admin/v1/dlq' . $this->query( $filters ) );
	}

	/**
	 * Replays the dead deliveries matching a filter.
	 *
	 * @param array $filter source, target, since (each optional).
	 * @return array|WP_Error {"replayed": n}
	 */
	public function replay_dlq( array $filter = array() ) {
		$body = wp_json_encode( (object) array_filter( $filter, 'strlen' ) );
		return $this->call( 'POST', '/admin/v1/dlq/replay', (string) $body );
	}

	/**
	 * Returns the sidecar's stats (counts, queue depth, targets).
	 *
	 * @return array|WP_Error
	 */
	public function stats() {
		return $this->call( 'GET', '/admin/v1/stats' );
	}

	/**
	 * Returns the admin listener's /readyz answer (no token needed): status,
	 * version, and the reason when it is not ready.
	 *
	 * @return array|WP_Error
	 */
	public function ready() {
		return $this->call( 'GET', '/readyz', '', false, array( 200, 503 ) );
	}

	/**
	 * Returns the clock skew with the sidecar in seconds (positive: this
	 * site's clock is ahead), from the Date header of the last admin API
	 * answer; null before any answer.
	 *
	 * @return int|null
	 */
	public function skew(): ?int {
		if ( null === $this->last_date ) {
			return null;
		}
		return $this->last_date[1] - $this->last_date[0];
	}

	/**
	 * Checks the sidecar's public listener (WPRELAY_SIDECAR_URL/healthz)
	 * with wp_safe_remote_get(), exactly as events are sent, so that a URL
	 * WordPress refuses shows here rather than as events that never arrive.
	 *
	 * @return array{reachable:bool,error:string}
	 */
	public function public_health(): array {
		$url = $this->config->sidecar_url();
		if ( '' === $url ) {
			return array(
				'reachable' => false,
				'error'     => __( 'WPRELAY_SIDECAR_URL is not set in wp-config.php.', 'wprelay' ),
			);
		}
		if ( false === wp_http_validate_url( $url . '/healthz' ) ) {
			return array(
				'reachable' => false,
				/* translators: %s: URL */
				'error'     => sprintf( __( 'WordPress refuses to send to %s (wp_http_validate_url): check the host and port of WPRELAY_SIDECAR_URL; its host must resolve.', 'wprelay' ), $url ),
			);
		}
		$res = wp_safe_remote_get(
			$url . '/healthz',
			array(
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
			)
		);
		if ( is_wp_error( $res ) ) {
			return array(
				'reachable' => false,
				'error'     => $res->get_error_message(),
			);
		}
		$code = (int) wp_remote_retrieve_response_code( $res );
		return array(
			'reachable' => 200 === $code,
			'error'     => 200 === $code ? '' : 'HTTP ' . $code,
		);
	}

	/**
	 * Returns a query string for the non-empty filters.
	 *
	 * @param array $filters Name => value.
	 * @return string '' or '?a=b&...'.
	 */
	private function query( array $filters ): string {
		$filters = array_filter(
			$filters,
			static function ( $v ) {
				return null !== $v && '' !== $v;
			}
		);
		return empty( $filters ) ? '' : '?' . http_build_query( $filters, '', '&', PHP_QUERY_RFC3986 );
	}

	/**
	 * Calls the admin API and decodes its JSON answer.
	 *
	 * @param string $method  HTTP method.
	 * @param string $path    Path and query.
	 * @param string $body    Request body.
	 * @param bool   $auth    Whether to send the token.
	 * @param int[]  $success Statuses that are answers rather than errors (default 2xx).
	 * @return array|WP_Error
	 */
	private function call( string $method, string $path, string $body = '', bool $auth = true, array $success = array() ) {
		$base  = rtrim( $this->config->get( 'WPRELAY_ADMIN_URL' ), '/' );
		$token = $this->config->get( 'WPRELAY_ADMIN_TOKEN' );
		if ( '' === $base || ( $auth && '' === $token ) ) {
			return new WP_Error( 'wprelay_not_configured', __( 'WPRELAY_ADMIN_URL and WPRELAY_ADMIN_TOKEN are not both set in wp-config.php.', 'wprelay' ) );
		}
		$url = $base . $path;
		if ( false === wp_http_validate_url( $url ) ) {
			/* translators: %s: the admin API URL */
			return new WP_Error( 'wprelay_url_refused', sprintf( __( 'WordPress refuses to call %s: check WPRELAY_ADMIN_URL (scheme, host, port); its host must resolve.', 'wprelay' ), $base ) );
		}
		$headers = array( 'Accept' => 'application/json' );
		if ( $auth ) {
			$headers['Authorization'] = 'Bearer ' . $token;
		}
		if ( '' !== $body ) {
			$headers['Content-Type'] = 'application/json';
		}
		$res = wp_safe_remote_request(
			$url,
			array(
				'method'      => $method,
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'headers'     => $headers,
				'body'        => '' === $body ? null : $body,
			)
		);
		if ( is_wp_error( $res ) ) {
			return new WP_Error( 'wprelay_unreachable', $res->get_error_message() );
		}
		$date = strtotime( (string) wp_remote_retrieve_header( $res, 'date' ) );
		if ( false !== $date ) {
			$this->last_date = array( $date, time() );
		}
		$code = (int) wp_remote_retrieve_response_code( $res );
		$json = json_decode( (string) wp_remote_retrieve_body( $res ), true );
		if ( 401 === $code ) {
			return new WP_Error( 'wprelay_unauthorized', __( 'The sidecar refused the admin token.', 'wprelay' ), array( 'status' => 401 ) );
		}
		$ok = empty( $success ) ? ( $code >= 200 && $code < 300 ) : in_array( $code, $success, true );
		if ( ! $ok ) {
			$api = is_array( $json ) && isset( $json['error'] ) ? sanitize_key( (string) $json['error'] ) : 'http_' . $code;
			$msg = is_array( $json ) && isset( $json['message'] ) ? (string) $json['message'] : 'HTTP ' . $code;
			return new WP_Error( 'wprelay_api_' . $api, $msg, array( 'status' => $code ) );
		}
		return is_array( $json ) ? $json : array();
	}
}
