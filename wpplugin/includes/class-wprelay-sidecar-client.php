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
 * WPRELAY_ADMIN_TOKEN) and checks that the site can reach its public
 * listener. The admin URL is an operator's constant, not input, so plain
 * wp_remote_request() is used for it; the public listener is checked with
 * wp_safe_remote_get(), exactly as events are sent, so that the health
 * panel shows the failure that would keep events from arriving.
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
	 * Builds the client.
	 *
	 * @param WPRelay_Config $config Settings.
	 */
	public function __construct( WPRelay_Config $config ) {
		$this->config = $config;
	}

	/**
	 * Lists events.
	 *
	 * @param array $filters status, source, type, limit, cursor.
	 * @return array|WP_Error {"events":[...],"next_cursor":""}
	 */
	public function events( array $filters ) {
		return $this->call( 'GET', '/admin/v1/events?' . http_build_query( array_filter( $filters ) ) );
	}

	/**
	 * Returns one event with its deliveries and attempts.
	 *
	 * @param string $id Event id.
	 * @return array|WP_Error
	 */
	public function event( string $id ) {
		return $this->call( 'GET', '/admin/v1/events/' . rawurlencode( $id ) );
	}

	/**
	 * Replays one event.
	 *
	 * @param string $id Event id.
	 * @return array|WP_Error
	 */
	public function replay( string $id ) {
		return $this->call( 'POST', '/admin/v1/events/' . rawurlencode( $id ) . '/replay' );
	}

	/**
	 * Replays every dead-lettered delivery.
	 *
	 * @return array|WP_Error {"replayed": n}
	 */
	public function replay_dlq() {
		return $this->call( 'POST', '/admin/v1/dlq/replay', '{}' );
	}

	/**
	 * Checks the sidecar: the public listener through wp_safe_remote_get
	 * (as events are sent), and the clock skew from its Date header.
	 *
	 * @return array{reachable:bool,error:string,skew:int|null}
	 */
	public function health(): array {
		$url = $this->config->sidecar_url();
		if ( '' === $url ) {
			return array(
				'reachable' => false,
				'error'     => 'WPRELAY_SIDECAR_URL is not set',
				'skew'      => null,
			);
		}
		if ( false === wp_http_validate_url( $url . '/healthz' ) ) {
			return array(
				'reachable' => false,
				'error'     => 'WordPress refuses this URL (wp_http_validate_url): check the host and port of WPRELAY_SIDECAR_URL',
				'skew'      => null,
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
				'skew'      => null,
			);
		}
		$date = strtotime( (string) wp_remote_retrieve_header( $res, 'date' ) );
		return array(
			'reachable' => 200 === (int) wp_remote_retrieve_response_code( $res ),
			'error'     => 200 === (int) wp_remote_retrieve_response_code( $res ) ? '' : 'HTTP ' . wp_remote_retrieve_response_code( $res ),
			'skew'      => $date ? time() - $date : null,
		);
	}

	/**
	 * Calls the admin API and decodes its JSON answer.
	 *
	 * @param string $method HTTP method.
	 * @param string $path   Path and query.
	 * @param string $body   Request body.
	 * @return array|WP_Error
	 */
	private function call( string $method, string $path, string $body = '' ) {
		$base  = rtrim( $this->config->get( 'WPRELAY_ADMIN_URL' ), '/' );
		$token = $this->config->get( 'WPRELAY_ADMIN_TOKEN' );
		if ( '' === $base || '' === $token ) {
			return new WP_Error( 'wprelay_not_configured', __( 'Set WPRELAY_ADMIN_URL and WPRELAY_ADMIN_TOKEN in wp-config.php.', 'wprelay' ) );
		}
		$res = wp_remote_request(
			$base . $path,
			array(
				'method'      => $method,
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'headers'     => array(
					'Authorization' => 'Bearer ' . $token,
					'Content-Type'  => 'application/json',
				),
				'body'        => '' === $body ? null : $body,
			)
		);
		if ( is_wp_error( $res ) ) {
			return $res;
		}
		$code = (int) wp_remote_retrieve_response_code( $res );
		$json = json_decode( (string) wp_remote_retrieve_body( $res ), true );
		if ( $code < 200 || $code >= 300 ) {
			$msg = is_array( $json ) && isset( $json['message'] ) ? (string) $json['message'] : 'HTTP ' . $code;
			return new WP_Error( 'wprelay_admin_api', $msg, array( 'status' => $code ) );
		}
		return is_array( $json ) ? $json : array();
	}
}
