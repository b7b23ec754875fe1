<?php
/**
 * Tests of WPRelay_Crypto against the Go side's fixtures.
 *
 * @package WPRelay
 */

use PHPUnit\Framework\TestCase;

/**
 * WPRelay_Crypto verifies what golang-jwt and standard-webhooks produce, and
 * refuses what they should refuse, for the same reason.
 */
final class WPRelay_Crypto_Test extends TestCase {

	/**
	 * The code under test.
	 *
	 * @var WPRelay_Crypto
	 */
	private $crypto;

	protected function setUp(): void {
		$this->crypto = new WPRelay_Crypto();
	}

	/**
	 * The keys of every allowed algorithm, from the fixtures.
	 *
	 * @return array
	 */
	private function keys(): array {
		$f = wprelay_test_fixtures();
		return array(
			'HS256' => $f['hs256_secret'],
			'RS256' => $f['rsa_public_pem'],
			'EdDSA' => $f['ed25519_public_pem'],
		);
	}

	public function token_provider(): array {
		$out = array();
		foreach ( wprelay_test_fixtures()['tokens'] as $t ) {
			$out[ $t['name'] ] = array( $t['token'], $t['valid'], $t['reason'] ?? '' );
		}
		return $out;
	}

	/**
	 * @dataProvider token_provider
	 */
	public function test_verify_jwt_matches_the_go_fixtures( string $token, bool $valid, string $reason ): void {
		$f = wprelay_test_fixtures();
		try {
			$claims = $this->crypto->verify_jwt(
				$token,
				$this->keys(),
				array(
					'iss' => $f['issuer'],
					'aud' => $f['audience'],
				),
				$f['now']
			);
			$this->assertTrue( $valid, 'accepted a token that must be refused (' . $reason . ')' );
			$this->assertSame( 'jti-fixture-1', $claims['jti'] );
		} catch ( WPRelay_Crypto_Exception $e ) {
			$this->assertFalse( $valid, 'refused a valid token: ' . $e->reason() );
			$this->assertSame( $reason, $e->reason() );
			$this->assertStringNotContainsString( $f['hs256_secret'], $e->getMessage() );
		}
	}

	public function test_only_the_configured_algorithms_are_allowed(): void {
		$f   = wprelay_test_fixtures();
		$rs  = $this->token_provider()['RS256 valid'][0];
		$hs  = $this->token_provider()['HS256 valid'][0];
		$exp = array(
			'iss' => $f['issuer'],
			'aud' => $f['audience'],
		);
		try {
			$this->crypto->verify_jwt( $rs, array( 'HS256' => $f['hs256_secret'] ), $exp, $f['now'] );
			$this->fail( 'RS256 accepted without a public key' );
		} catch ( WPRelay_Crypto_Exception $e ) {
			$this->assertSame( 'alg_not_allowed', $e->reason() );
		}
		try {
			$this->crypto->verify_jwt( $hs, array( 'RS256' => $f['rsa_public_pem'] ), $exp, $f['now'] );
			$this->fail( 'HS256 accepted without a secret' );
		} catch ( WPRelay_Crypto_Exception $e ) {
			$this->assertSame( 'alg_not_allowed', $e->reason() );
		}
	}

	public function test_expired_token_is_refused_after_the_leeway(): void {
		$f   = wprelay_test_fixtures();
		$tok = $this->token_provider()['HS256 valid'][0];
		$exp = array(
			'iss' => $f['issuer'],
			'aud' => $f['audience'],
		);
		$claims = $this->crypto->verify_jwt( $tok, $this->keys(), $exp, $f['now'] + 110 + 30 );
		$this->assertSame( 'wprelay', $claims['iss'] );
		$this->expectExceptionObject( new WPRelay_Crypto_Exception( 'expired', 'token expired' ) );
		$this->crypto->verify_jwt( $tok, $this->keys(), $exp, $f['now'] + 110 + 31 );
	}

	public function test_public_key_algorithm(): void {
		$f = wprelay_test_fixtures();
		$this->assertSame( 'RS256', $this->crypto->public_key_algorithm( $f['rsa_public_pem'] ) );
		$this->assertSame( 'EdDSA', $this->crypto->public_key_algorithm( $f['ed25519_public_pem'] ) );
		$this->assertSame( '', $this->crypto->public_key_algorithm( 'not a key' ) );
	}

	public function test_sign_jwt_hs256_round_trips(): void {
		$now   = 1767225600;
		$token = $this->crypto->sign_jwt_hs256(
			array(
				'iss' => 'https://site.example',
				'aud' => 'wprelay',
				'iat' => $now,
				'exp' => $now + 120,
				'jti' => 'x',
			),
			'secret-secret-secret-secret-secret'
		);
		$claims = $this->crypto->verify_jwt(
			$token,
			array( 'HS256' => 'secret-secret-secret-secret-secret' ),
			array(
				'iss' => 'https://site.example',
				'aud' => 'wprelay',
			),
			$now
		);
		$this->assertSame( 'x', $claims['jti'] );
		$this->assertSame( '{"alg":"HS256","typ":"JWT"}', base64_decode( strtr( explode( '.', $token )[0], '-_', '+/' ) ) );
	}

	public function webhook_provider(): array {
		$out = array();
		foreach ( wprelay_test_fixtures()['webhooks'] as $w ) {
			$out[ $w['name'] ] = array( $w );
		}
		return $out;
	}

	/**
	 * @dataProvider webhook_provider
	 */
	public function test_verify_webhook_matches_the_go_fixtures( array $w ): void {
		try {
			$this->crypto->verify_webhook( $w['secrets'], $w['id'], $w['timestamp'], $w['signature'], $w['body'], wprelay_test_fixtures()['now'] );
			$this->assertTrue( $w['valid'], 'accepted a signature that must be refused (' . ( $w['reason'] ?? '' ) . ')' );
		} catch ( WPRelay_Crypto_Exception $e ) {
			$this->assertFalse( $w['valid'], 'refused a valid signature: ' . $e->reason() );
			$this->assertSame( $w['reason'], $e->reason() );
		}
	}

	public function test_sign_webhook_reproduces_the_go_signature(): void {
		$w = $this->webhook_provider()['valid'][0];
		$this->assertSame( $w['signature'], $this->crypto->sign_webhook( $w['secrets'][0], $w['id'], (int) $w['timestamp'], $w['body'] ) );
	}

	public function test_malformed_secret_is_refused(): void {
		$this->expectException( WPRelay_Crypto_Exception::class );
		$this->crypto->sign_webhook( 'whsec_***not base64***', 'id', 1, 'body' );
	}

	public function test_uuid4(): void {
		$seen = array();
		for ( $i = 0; $i < 100; $i++ ) {
			$u = $this->crypto->uuid4();
			$this->assertMatchesRegularExpression( '/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/', $u );
			$seen[ $u ] = true;
		}
		$this->assertCount( 100, $seen );
	}

	public function test_base64url_refuses_non_canonical_spellings(): void {
		$this->assertSame( 'ab', $this->crypto->base64url_decode( 'YWI' ) );
		$this->expectException( WPRelay_Crypto_Exception::class );
		$this->crypto->base64url_decode( 'YWJ' ); // Stray trailing bits.
	}
}
