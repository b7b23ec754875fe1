<?php
/**
 * Tests of WPRelay_Dispatcher::current_layout against the Go side's cases.
 *
 * @package WPRelay
 */

use PHPUnit\Framework\TestCase;

/**
 * Stored receipts of earlier versions reach handlers in today's envelope
 * layout, by the rules the sidecar applies (testdata/upgrade/cases.json,
 * which relay/upgrade_test.go reads too).
 */
final class WPRelay_Dispatcher_Test extends TestCase {

	/**
	 * The cases.
	 *
	 * @return array
	 */
	public function cases(): array {
		$path  = dirname( __DIR__, 2 ) . '/testdata/upgrade/cases.json';
		$cases = json_decode( (string) file_get_contents( $path ), true );
		$out   = array();
		foreach ( $cases['cases'] as $c ) {
			$out[ $c['name'] ] = array( $c['envelope'], $c['want_data'] );
		}
		return $out;
	}

	/**
	 * One case.
	 *
	 * @dataProvider cases
	 * @param string     $envelope  The stored envelope (JSON).
	 * @param array|null $want_data Its data in today's layout; null = unchanged.
	 */
	public function test_current_layout( string $envelope, ?array $want_data ): void {
		$event = json_decode( $envelope, true );
		$got   = WPRelay_Dispatcher::current_layout( $event );
		if ( null === $want_data ) {
			$this->assertSame( $event, $got );
			return;
		}
		$this->assertSame( $want_data, $got['data'] );
		unset( $event['data'], $got['data'] );
		$this->assertSame( $event, $got );
	}
}
