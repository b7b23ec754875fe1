<?php
/**
 * WPRelay_Crypto_Exception: why a token or a signature was refused.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) && ! defined( 'WPRELAY_CRYPTO_STANDALONE' ) ) {
	exit;
}

/**
 * Thrown by WPRelay_Crypto when a JWT or a Standard Webhooks signature does
 * not verify. The message is a short reason that never contains the token,
 * the signature or a secret; `reason()` is a machine-readable code.
 */
class WPRelay_Crypto_Exception extends RuntimeException {

	/**
	 * Machine-readable reason, e.g. "expired" or "bad_signature".
	 *
	 * @var string
	 */
	private $reason;

	/**
	 * Builds the exception.
	 *
	 * @param string $reason  Machine-readable reason.
	 * @param string $message Human-readable reason, safe to show to the sender.
	 */
	public function __construct( string $reason, string $message ) {
		parent::__construct( $message );
		$this->reason = $reason;
	}

	/**
	 * Returns the machine-readable reason.
	 *
	 * @return string
	 */
	public function reason(): string {
		return $this->reason;
	}
}
