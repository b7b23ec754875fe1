<?php
/**
 * WPRelay_Request_Verifier: is this request from our sidecar?
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Checks the two credentials of a delivery from the sidecar (DESIGN.md
 * "Delivery — sidecar → targets"): the bearer JWT (iss "wprelay", aud this
 * site, exp/iat with 30 s leeway, lifetime at most 300 s, an allowed
 * algorithm) and the Standard Webhooks signature over the raw body, whose
 * webhook-id must equal the Idempotency-Key header.
 */
class WPRelay_Request_Verifier {

	/** Longest Idempotency-Key accepted (the receipts column). */
	const MAX_KEY = 191;

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Token and signature code.
	 *
	 * @var WPRelay_Crypto
	 */
	private $crypto;

	/**
	 * Clock; returns Unix time.
	 *
	 * @var callable
	 */
	private $now;

	/**
	 * Builds the verifier.
	 *
	 * @param WPRelay_Config $config Settings.
	 * @param WPRelay_Crypto $crypto Token and signature code.
	 * @param callable|null  $now    Clock (default time()).
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Crypto $crypto, ?callable $now = null ) {
		$this->config = $config;
		$this->crypto = $crypto;
		$this->now    = $now ?? 'time';
	}

	/**
	 * Verifies a request.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return true|WP_Error
	 */
	public function verify( WP_REST_Request $request ) {
		$keys    = $this->config->inbound_keys( $this->crypto );
		$secrets = $this->config->inbound_signing_secrets();
		if ( empty( $keys ) || empty( $secrets ) ) {
			// 503, not 401: the sidecar keeps retrying until the site is configured.
			return new WP_Error( 'wprelay_not_configured', __( 'Webhook Relay is not configured: set WPRELAY_WP_JWT_SECRET (or WPRELAY_WP_PUBLIC_KEY) and WPRELAY_WP_SIGNING_SECRET in wp-config.php.', 'wprelay' ), array( 'status' => 503 ) );
		}
		$now  = (int) call_user_func( $this->now );
		$auth = (string) $request->get_header( 'authorization' );
		if ( ! preg_match( '/^Bearer\s+(\S+)$/i', trim( $auth ), $m ) ) {
			return $this->invalid_token( __( 'Missing bearer token.', 'wprelay' ) );
		}
		try {
			$this->crypto->verify_jwt(
				$m[1],
				$keys,
				array(
					'iss' => 'wprelay',
					'aud' => $this->config->audiences(),
				),
				$now
			);
		} catch ( WPRelay_Crypto_Exception $e ) {
			return $this->invalid_token( $e->getMessage() );
		}

		$key = (string) $request->get_header( 'idempotency_key' );
		$id  = (string) $request->get_header( 'webhook_id' );
		if ( '' === $key || strlen( $key ) > self::MAX_KEY || ! preg_match( '/^[\x21-\x7e]+$/', $key ) ) {
			return $this->invalid_signature( __( 'Missing or malformed Idempotency-Key.', 'wprelay' ) );
		}
		if ( ! hash_equals( $key, $id ) ) {
			return $this->invalid_signature( __( 'webhook-id must equal the Idempotency-Key.', 'wprelay' ) );
		}
		try {
			$this->crypto->verify_webhook(
				$secrets,
				$id,
				(string) $request->get_header( 'webhook_timestamp' ),
				(string) $request->get_header( 'webhook_signature' ),
				$request->get_body(),
				$now
			);
		} catch ( WPRelay_Crypto_Exception $e ) {
			return $this->invalid_signature( $e->getMessage() );
		}
		return true;
	}

	/**
	 * Builds a 401 wprelay_invalid_token error.
	 *
	 * @param string $reason Why.
	 * @return WP_Error
	 */
	private function invalid_token( string $reason ): WP_Error {
		return new WP_Error( 'wprelay_invalid_token', $reason, array( 'status' => 401 ) );
	}

	/**
	 * Builds a 401 wprelay_invalid_signature error.
	 *
	 * @param string $reason Why.
	 * @return WP_Error
	 */
	private function invalid_signature( string $reason ): WP_Error {
		return new WP_Error( 'wprelay_invalid_signature', $reason, array( 'status' => 401 ) );
	}
}
