<?php
/**
 * WPRelay_Crypto: JWT and Standard Webhooks signatures, without WordPress.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) && ! defined( 'WPRELAY_CRYPTO_STANDALONE' ) ) {
	exit;
}

/**
 * Signs and verifies the two credentials every wprelay request carries:
 *
 * - a JWT in `Authorization: Bearer` (HS256 with a shared secret; RS256 and
 *   EdDSA with a public key), and
 * - a Standard Webhooks signature (`webhook-id`, `webhook-timestamp`,
 *   `webhook-signature: v1,<base64 HMAC-SHA256("{id}.{ts}.{body}")>`) made
 *   with a `whsec_<base64>` secret.
 *
 * This class makes no WordPress calls (it uses wp_json_encode() when WordPress is loaded), so that it can be tested alone. Every
 * comparison of a MAC is constant-time (hash_equals). Failures throw
 * WPRelay_Crypto_Exception whose message never contains a secret, a token or
 * a signature.
 */
class WPRelay_Crypto {

	/** Leeway on exp, iat and nbf, in seconds. */
	const LEEWAY = 30;

	/** Longest accepted token lifetime (exp - iat), in seconds. */
	const MAX_TTL = 300;

	/** Standard Webhooks timestamp tolerance, in seconds. */
	const TOLERANCE = 300;

	/** DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410). */
	const ED25519_SPKI_PREFIX = '302a300506032b6570032100';

	/**
	 * Verifies a compact JWT and returns its claims.
	 *
	 * $keys maps each allowed algorithm to its key: 'HS256' => shared secret,
	 * 'RS256' => PEM public key, 'EdDSA' => PEM public key or the 32 raw key
	 * bytes. Only those algorithms are accepted; "none" never is. $expect
	 * holds the required 'iss' and 'aud' (a string, or a list of accepted
	 * strings, that the aud claim must equal or contain). exp and iat are required, exp - iat may not exceed
	 * MAX_TTL, and exp, iat and nbf are checked with LEEWAY seconds.
	 *
	 * @param string $token  The compact JWT.
	 * @param array  $keys   Algorithm => key.
	 * @param array  $expect Required claims: 'iss', 'aud'.
	 * @param int    $now    Unix time to check against.
	 * @return array The claims.
	 * @throws WPRelay_Crypto_Exception When the token is not valid.
	 */
	public function verify_jwt( string $token, array $keys, array $expect, int $now ): array {
		$parts = explode( '.', $token );
		if ( 3 !== count( $parts ) ) {
			throw new WPRelay_Crypto_Exception( 'malformed', 'malformed token' );
		}
		$header = json_decode( $this->base64url_decode( $parts[0] ), true );
		$claims = json_decode( $this->base64url_decode( $parts[1] ), true );
		$sig    = $this->base64url_decode( $parts[2] );
		if ( ! is_array( $header ) || ! is_array( $claims ) || ( array_is_list( $claims ) && array() !== $claims ) ) {
			throw new WPRelay_Crypto_Exception( 'malformed', 'malformed token' );
		}
		$alg = isset( $header['alg'] ) && is_string( $header['alg'] ) ? $header['alg'] : '';
		if ( '' === $alg || 0 === strcasecmp( $alg, 'none' ) || ! array_key_exists( $alg, $keys ) || empty( $keys[ $alg ] ) ) {
			throw new WPRelay_Crypto_Exception( 'alg_not_allowed', 'algorithm not allowed' );
		}
		$signed = $parts[0] . '.' . $parts[1];
		if ( ! $this->verify_signature( $alg, $signed, $sig, $keys[ $alg ] ) ) {
			throw new WPRelay_Crypto_Exception( 'bad_signature', 'token signature does not match' );
		}
		$this->check_claims( $claims, $expect, $now );
		return $claims;
	}

	/**
	 * Signs claims as an HS256 JWT.
	 *
	 * @param array  $claims Claims; encoded as a JSON object.
	 * @param string $secret Shared secret.
	 * @return string The compact JWT.
	 */
	public function sign_jwt_hs256( array $claims, string $secret ): string {
		$header = $this->base64url_encode( '{"alg":"HS256","typ":"JWT"}' );
		$body   = $this->base64url_encode( $this->json( (object) $claims ) );
		$mac    = hash_hmac( 'sha256', $header . '.' . $body, $secret, true );
		return $header . '.' . $body . '.' . $this->base64url_encode( $mac );
	}

	/**
	 * Returns the Standard Webhooks signature header value for a message.
	 *
	 * @param string $secret    A `whsec_<base64>` secret.
	 * @param string $id        The webhook-id.
	 * @param int    $timestamp The webhook-timestamp (Unix seconds).
	 * @param string $body      The raw body.
	 * @return string "v1,<base64>".
	 * @throws WPRelay_Crypto_Exception When the secret is malformed.
	 */
	public function sign_webhook( string $secret, string $id, int $timestamp, string $body ): string {
		$key = $this->webhook_key( $secret );
		return 'v1,' . base64_encode( hash_hmac( 'sha256', $id . '.' . $timestamp . '.' . $body, $key, true ) ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- signatures and JWTs are base64 by their specifications.
	}

	/**
	 * Verifies a Standard Webhooks signature.
	 *
	 * Any v1 signature in the space-separated list may match any of the
	 * secrets (rotation). The timestamp must be within $tolerance of $now.
	 *
	 * @param string[] $secrets   `whsec_<base64>` secrets.
	 * @param string   $id        The webhook-id header.
	 * @param string   $timestamp The webhook-timestamp header.
	 * @param string   $signature The webhook-signature header.
	 * @param string   $body      The raw body.
	 * @param int      $now       Unix time to check against.
	 * @param int      $tolerance Allowed clock difference, in seconds.
	 * @throws WPRelay_Crypto_Exception When it does not verify.
	 */
	public function verify_webhook( array $secrets, string $id, string $timestamp, string $signature, string $body, int $now, int $tolerance = self::TOLERANCE ): void {
		if ( '' === $id || '' === $timestamp || '' === $signature ) {
			throw new WPRelay_Crypto_Exception( 'missing_headers', 'webhook-id, webhook-timestamp and webhook-signature are required' );
		}
		if ( ! preg_match( '/^[0-9]{1,12}$/', $timestamp ) ) {
			throw new WPRelay_Crypto_Exception( 'bad_timestamp', 'webhook-timestamp is not a Unix time' );
		}
		if ( abs( $now - (int) $timestamp ) > $tolerance ) {
			throw new WPRelay_Crypto_Exception( 'stale_timestamp', 'webhook-timestamp outside the tolerance' );
		}
		$given = array();
		foreach ( preg_split( '/\s+/', trim( $signature ) ) as $item ) {
			$pair = explode( ',', $item, 2 );
			if ( 2 === count( $pair ) && 'v1' === $pair[0] ) {
				$given[] = $pair[1];
			}
		}
		$signed = $id . '.' . $timestamp . '.' . $body;
		foreach ( $secrets as $secret ) {
			if ( '' === (string) $secret ) {
				continue;
			}
			$expected = base64_encode( hash_hmac( 'sha256', $signed, $this->webhook_key( (string) $secret ), true ) ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- signatures and JWTs are base64 by their specifications.
			foreach ( $given as $candidate ) {
				if ( hash_equals( $expected, $candidate ) ) {
					return;
				}
			}
		}
		throw new WPRelay_Crypto_Exception( 'bad_signature', 'webhook signature does not match' );
	}

	/**
	 * Returns a random (version 4) UUID.
	 *
	 * @return string
	 */
	public function uuid4(): string {
		$b    = random_bytes( 16 );
		$b[6] = chr( ( ord( $b[6] ) & 0x0f ) | 0x40 );
		$b[8] = chr( ( ord( $b[8] ) & 0x3f ) | 0x80 );
		$h    = bin2hex( $b );
		return substr( $h, 0, 8 ) . '-' . substr( $h, 8, 4 ) . '-' . substr( $h, 12, 4 ) . '-' . substr( $h, 16, 4 ) . '-' . substr( $h, 20 );
	}

	/**
	 * Names the JWT algorithm a public key is for: 'RS256' for an RSA key,
	 * 'EdDSA' for an Ed25519 key, '' when the key is neither.
	 *
	 * @param string $pem PEM public key.
	 * @return string
	 */
	public function public_key_algorithm( string $pem ): string {
		if ( null !== $this->ed25519_key( $pem ) ) {
			return 'EdDSA';
		}
		if ( function_exists( 'openssl_pkey_get_public' ) ) {
			$key = openssl_pkey_get_public( $pem );
			if ( false !== $key ) {
				$details = openssl_pkey_get_details( $key );
				if ( is_array( $details ) && OPENSSL_KEYTYPE_RSA === $details['type'] && $details['bits'] >= 2048 ) {
					return 'RS256';
				}
			}
		}
		return '';
	}

	/**
	 * Decodes base64url without padding, strictly.
	 *
	 * @param string $s Encoded text.
	 * @return string Decoded bytes.
	 * @throws WPRelay_Crypto_Exception When $s is not base64url.
	 */
	public function base64url_decode( string $s ): string {
		if ( ! preg_match( '/^[A-Za-z0-9_-]*$/', $s ) || 1 === strlen( $s ) % 4 ) {
			throw new WPRelay_Crypto_Exception( 'malformed', 'malformed token' );
		}
		$out = base64_decode( strtr( $s, '-_', '+/' ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- secrets, keys and JWTs are base64 by their specifications.
		if ( false === $out || $this->base64url_encode( $out ) !== $s ) {
			// Non-canonical spellings (stray trailing bits) are refused, so
			// that one token has exactly one accepted form.
			throw new WPRelay_Crypto_Exception( 'malformed', 'malformed token' );
		}
		return $out;
	}

	/**
	 * Encodes bytes as base64url without padding.
	 *
	 * @param string $bytes Bytes.
	 * @return string
	 */
	public function base64url_encode( string $bytes ): string {
		return rtrim( strtr( base64_encode( $bytes ), '+/', '-_' ), '=' ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_encode -- signatures and JWTs are base64 by their specifications.
	}

	/**
	 * Checks a signature made with $alg over $signed.
	 *
	 * @param string $alg    Algorithm name.
	 * @param string $signed Signed text.
	 * @param string $sig    Signature bytes.
	 * @param string $key    Key for $alg.
	 * @return bool
	 */
	private function verify_signature( string $alg, string $signed, string $sig, string $key ): bool {
		switch ( $alg ) {
			case 'HS256':
				return hash_equals( hash_hmac( 'sha256', $signed, $key, true ), $sig );
			case 'RS256':
				if ( ! function_exists( 'openssl_verify' ) || 'RS256' !== $this->public_key_algorithm( $key ) ) {
					return false;
				}
				return 1 === openssl_verify( $signed, $sig, $key, OPENSSL_ALGO_SHA256 );
			case 'EdDSA':
				$raw = $this->ed25519_key( $key );
				if ( null === $raw || ! function_exists( 'sodium_crypto_sign_verify_detached' ) || SODIUM_CRYPTO_SIGN_BYTES !== strlen( $sig ) ) {
					return false;
				}
				return sodium_crypto_sign_verify_detached( $sig, $signed, $raw );
		}
		return false;
	}

	/**
	 * Checks the registered claims of a token whose signature is valid.
	 *
	 * @param array $claims Claims.
	 * @param array $expect Required 'iss' and 'aud'.
	 * @param int   $now    Unix time.
	 * @throws WPRelay_Crypto_Exception When a claim is wrong.
	 */
	private function check_claims( array $claims, array $expect, int $now ): void {
		$num = static function ( $claims, $name ) {
			return isset( $claims[ $name ] ) && ( is_int( $claims[ $name ] ) || is_float( $claims[ $name ] ) ) ? (int) $claims[ $name ] : null;
		};
		$exp = $num( $claims, 'exp' );
		$iat = $num( $claims, 'iat' );
		$nbf = $num( $claims, 'nbf' );
		if ( null === $exp || null === $iat ) {
			throw new WPRelay_Crypto_Exception( 'missing_claim', 'exp and iat are required' );
		}
		if ( isset( $expect['iss'] ) && ( ! isset( $claims['iss'] ) || ! is_string( $claims['iss'] ) || rtrim( $claims['iss'], '/' ) !== rtrim( (string) $expect['iss'], '/' ) ) ) {
			throw new WPRelay_Crypto_Exception( 'wrong_issuer', 'wrong issuer' );
		}
		if ( isset( $expect['aud'] ) ) {
			$aud  = isset( $claims['aud'] ) ? ( is_array( $claims['aud'] ) ? $claims['aud'] : array( $claims['aud'] ) ) : array();
			$want = array_map(
				static function ( $a ) {
					return rtrim( (string) $a, '/' );
				},
				(array) $expect['aud']
			);
			$ok   = false;
			foreach ( $aud as $a ) {
				$ok = $ok || ( is_string( $a ) && in_array( rtrim( $a, '/' ), $want, true ) );
			}
			if ( ! $ok ) {
				throw new WPRelay_Crypto_Exception( 'wrong_audience', 'wrong audience' );
			}
		}
		if ( $exp < $iat || $exp - $iat > self::MAX_TTL ) {
			throw new WPRelay_Crypto_Exception( 'bad_lifetime', 'token lifetime (exp - iat) over 300 s' );
		}
		if ( $now > $exp + self::LEEWAY ) {
			throw new WPRelay_Crypto_Exception( 'expired', 'token expired' );
		}
		if ( $iat > $now + self::LEEWAY ) {
			throw new WPRelay_Crypto_Exception( 'issued_in_future', 'token issued in the future' );
		}
		if ( null !== $nbf && $nbf > $now + self::LEEWAY ) {
			throw new WPRelay_Crypto_Exception( 'not_yet_valid', 'token not valid yet' );
		}
	}

	/**
	 * Returns the raw 32-byte Ed25519 public key in $key (PEM SPKI, or the
	 * raw bytes, or their base64), or null when $key is not one.
	 *
	 * @param string $key Key text.
	 * @return string|null
	 */
	private function ed25519_key( string $key ): ?string {
		if ( 32 === strlen( $key ) && false === strpos( $key, '-----' ) ) {
			return $key;
		}
		if ( preg_match( '/-----BEGIN PUBLIC KEY-----(.+?)-----END PUBLIC KEY-----/s', $key, $m ) ) {
			$der = base64_decode( preg_replace( '/\s+/', '', $m[1] ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- secrets, keys and JWTs are base64 by their specifications.
		} else {
			$der = base64_decode( trim( $key ), true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- secrets, keys and JWTs are base64 by their specifications.
			if ( false !== $der && 32 === strlen( $der ) ) {
				return $der;
			}
		}
		if ( false === $der || 44 !== strlen( $der ) || 0 !== strpos( bin2hex( $der ), self::ED25519_SPKI_PREFIX ) ) {
			return null;
		}
		return substr( $der, 12 );
	}

	/**
	 * Decodes a Standard Webhooks secret into its HMAC key.
	 *
	 * @param string $secret `whsec_<base64>` (the prefix is optional).
	 * @return string Key bytes.
	 * @throws WPRelay_Crypto_Exception When the secret is not base64.
	 */
	private function webhook_key( string $secret ): string {
		if ( 0 === strpos( $secret, 'whsec_' ) ) {
			$secret = substr( $secret, 6 );
		}
		$key = base64_decode( $secret, true ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- secrets, keys and JWTs are base64 by their specifications.
		if ( false === $key || '' === $key ) {
			throw new WPRelay_Crypto_Exception( 'bad_secret', 'signing secret is not whsec_<base64>' );
		}
		return $key;
	}

	/**
	 * Encodes claims as JSON: wp_json_encode() inside WordPress, json_encode()
	 * when the class is used alone (unit tests, the Go side's fixtures).
	 *
	 * @param object $claims Claims.
	 * @return string
	 */
	private function json( $claims ): string {
		if ( function_exists( 'wp_json_encode' ) ) {
			return (string) wp_json_encode( $claims, JSON_UNESCAPED_SLASHES );
		}
		return (string) json_encode( $claims, JSON_UNESCAPED_SLASHES ); // phpcs:ignore WordPress.WP.AlternativeFunctions.json_encode_json_encode -- only outside WordPress, where wp_json_encode() does not exist.
	}
}
