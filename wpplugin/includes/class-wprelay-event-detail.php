<?php
/**
 * WPRelay_Event_Detail: one event in wp-admin.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Renders one event: its facts (ids, times, trace and causation), each
 * delivery with its Idempotency-Key, last error and an attempt timeline,
 * Replay buttons (every delivery, or one target), the envelope targets
 * receive and the raw request (credentials redacted by the sidecar).
 */
class WPRelay_Event_Detail {

	/**
	 * Sidecar admin API.
	 *
	 * @var WPRelay_Sidecar_Client
	 */
	private $client;

	/**
	 * Explains a client error and the next step.
	 *
	 * @var callable(WP_Error):string
	 */
	private $explain;

	/**
	 * Builds the view.
	 *
	 * @param WPRelay_Sidecar_Client $client  Sidecar admin API.
	 * @param callable               $explain Explains a client error (WPRelay_Admin_Page::explain).
	 */
	public function __construct( WPRelay_Sidecar_Client $client, callable $explain ) {
		$this->client  = $client;
		$this->explain = $explain;
	}

	/**
	 * Renders event $id.
	 *
	 * @param string $id Event id.
	 */
	public function render( string $id ): void {
		echo '<p><a href="' . esc_url( WPRelay_Admin_Page::url() ) . '">← ' . esc_html__( 'All events', 'wprelay' ) . '</a></p>';
		$e = $this->client->event( $id );
		if ( is_wp_error( $e ) ) {
			echo '<div class="notice notice-error" id="wprelay-problem"><p><strong>' . esc_html__( 'This event cannot be shown.', 'wprelay' ) . '</strong> ' . esc_html( call_user_func( $this->explain, $e ) ) . '</p></div>';
			return;
		}
		$type = '' === (string) ( $e['type'] ?? '' ) ? __( '(no type)', 'wprelay' ) : (string) $e['type'];
		echo '<div class="wprelay-detail" id="wprelay-event" data-event-id="' . esc_attr( (string) $e['id'] ) . '">';
		echo '<h2>' . esc_html( $type ) . ' ' . WPRelay_Admin_Page::badge( (string) ( $e['status'] ?? '' ) ) . '</h2>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- badge() escapes.

		$facts = array(
			__( 'Event id', 'wprelay' )        => '<code>' . esc_html( (string) $e['id'] ) . '</code>',
			__( 'Source', 'wprelay' )          => esc_html( (string) ( $e['source'] ?? '' ) . ( empty( $e['tenant'] ) ? '' : ' / ' . $e['tenant'] ) ),
			__( 'Idempotency key', 'wprelay' ) => '<code>' . esc_html( (string) ( $e['idempotency_key'] ?? '' ) ) . '</code>',
			__( 'Received', 'wprelay' )        => WPRelay_Admin_Page::when( (string) ( $e['received_at'] ?? '' ) ) . ' UTC',
			__( 'Occurred', 'wprelay' )        => WPRelay_Admin_Page::when( (string) ( $e['occurred_at'] ?? '' ) ) . ' UTC',
			__( 'Trace id', 'wprelay' )        => empty( $e['trace_id'] ) ? '—' : '<code>' . esc_html( (string) $e['trace_id'] ) . '</code>',
		);
		if ( ! empty( $e['causation_id'] ) ) {
			$facts[ __( 'Caused by', 'wprelay' ) ] = $this->link( (string) $e['causation_id'] );
		}
		if ( ! empty( $e['caused'] ) ) {
			$facts[ __( 'Caused', 'wprelay' ) ] = implode( '<br>', array_map( array( $this, 'link' ), array_map( 'strval', (array) $e['caused'] ) ) );
		}
		echo '<table class="widefat striped wprelay-facts" id="wprelay-event-facts"><tbody>';
		foreach ( $facts as $label => $html ) {
			echo '<tr><th scope="row">' . esc_html( $label ) . '</th><td>' . wp_kses_post( $html ) . '</td></tr>';
		}
		echo '</tbody></table>';

		$deliveries = (array) ( $e['deliveries'] ?? array() );
		echo '<h3>' . esc_html__( 'Deliveries', 'wprelay' ) . '</h3>';
		if ( empty( $deliveries ) ) {
			echo '<p>' . esc_html__( 'No route matched this event, so it went nowhere. Add a route in wprelay.yaml, then import or replay it.', 'wprelay' ) . '</p>';
		} else {
			echo '<p class="wprelay-actions">';
			WPRelay_Admin_Page::button( 'wprelay_replay', __( 'Replay to every target', 'wprelay' ), array( 'event_id' => (string) $e['id'] ), 'button button-primary' );
			echo ' <span class="description">' . esc_html__( 'A replay is one more attempt of the same delivery: the target gets the same Idempotency-Key, so a receiver that dedupes acts once.', 'wprelay' ) . '</span></p>';
		}
		foreach ( $deliveries as $d ) {
			$this->delivery( (string) $e['id'], (array) $d );
		}

		echo '<h3>' . esc_html__( 'Envelope', 'wprelay' ) . '</h3>';
		echo '<p class="description">' . esc_html__( 'What every target receives, byte for byte on each attempt.', 'wprelay' ) . '</p>';
		echo '<pre class="wprelay-json" id="wprelay-envelope">' . esc_html( (string) wp_json_encode( $e['envelope'] ?? new stdClass(), JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ) ) . '</pre>';

		$raw = $this->client->raw( (string) $e['id'] );
		echo '<details class="wprelay-raw"><summary>' . esc_html__( 'Raw request as received (credentials redacted)', 'wprelay' ) . '</summary>';
		if ( is_wp_error( $raw ) ) {
			echo '<p>' . esc_html( $raw->get_error_message() ) . '</p>';
		} else {
			echo '<p><code>' . esc_html( (string) ( $raw['method'] ?? '' ) . ' ' . (string) ( $raw['path'] ?? '' ) ) . '</code></p><table class="widefat striped"><tbody>';
			$headers = (array) ( $raw['headers'] ?? array() );
			ksort( $headers );
			foreach ( $headers as $name => $values ) {
				foreach ( (array) $values as $v ) {
					echo '<tr><th scope="row"><code>' . esc_html( (string) $name ) . '</code></th><td><code>' . esc_html( (string) $v ) . '</code></td></tr>';
				}
			}
			echo '</tbody></table>';
			if ( array_key_exists( 'body', $raw ) ) {
				$body = wp_json_encode( $raw['body'], JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE );
			} elseif ( isset( $raw['body_text'] ) ) {
				$body = (string) $raw['body_text'];
			} else {
				/* translators: %d: bytes */
				$body = sprintf( __( '(%d bytes of binary data)', 'wprelay' ), strlen( (string) base64_decode( (string) ( $raw['body_base64'] ?? '' ) ) ) ); // phpcs:ignore WordPress.PHP.DiscouragedPHPFunctions.obfuscation_base64_decode -- only its length is shown.
			}
			echo '<pre class="wprelay-json">' . esc_html( (string) $body ) . '</pre>';
		}
		echo '</details></div>';
	}

	/**
	 * Renders one delivery with its attempt timeline.
	 *
	 * @param string $event_id Event id.
	 * @param array  $d        Delivery.
	 */
	private function delivery( string $event_id, array $d ): void {
		$target  = (string) ( $d['target'] ?? '' );
		$status  = (string) ( $d['status'] ?? '' );
		$history = (array) ( $d['history'] ?? array() );
		echo '<div class="wprelay-delivery" data-target="' . esc_attr( $target ) . '">';
		echo '<h4>' . esc_html( $target ) . ' ' . WPRelay_Admin_Page::badge( $status ) . '</h4>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- badge() escapes.
		echo '<table class="wprelay-facts wprelay-compact"><tbody>';
		echo '<tr><th scope="row">' . esc_html__( 'Attempts', 'wprelay' ) . '</th><td class="wprelay-attempts">' . esc_html( (string) (int) ( $d['attempts'] ?? 0 ) ) . '</td></tr>';
		echo '<tr><th scope="row">' . esc_html__( 'Idempotency-Key', 'wprelay' ) . '</th><td><code>' . esc_html( (string) ( $d['idempotency_key'] ?? $event_id . ':' . $target ) ) . '</code></td></tr>';
		if ( in_array( $status, array( 'pending', 'retrying' ), true ) ) {
			echo '<tr><th scope="row">' . esc_html__( 'Next attempt', 'wprelay' ) . '</th><td>' . WPRelay_Admin_Page::when( (string) ( $d['next_at'] ?? '' ) ) . ' UTC</td></tr>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- when() escapes.
		}
		if ( 'dead' === $status ) {
			echo '<tr><th scope="row">' . esc_html__( 'Dead since', 'wprelay' ) . '</th><td>' . WPRelay_Admin_Page::when( (string) ( $d['dead_at'] ?? '' ) ) . ' UTC</td></tr>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- when() escapes.
			echo '<tr><th scope="row">' . esc_html__( 'Why', 'wprelay' ) . '</th><td class="wprelay-error">' . esc_html( (string) ( $d['reason'] ?? '' ) ) . '</td></tr>';
		}
		if ( ! empty( $d['last_error'] ) ) {
			echo '<tr><th scope="row">' . esc_html__( 'Last error', 'wprelay' ) . '</th><td class="wprelay-error wprelay-last-error">' . esc_html( (string) $d['last_error'] ) . '</td></tr>';
		}
		echo '</tbody></table>';
		if ( 'skipped' !== $status ) {
			WPRelay_Admin_Page::button(
				'wprelay_replay',
				/* translators: %s: target name */
				sprintf( __( 'Replay to %s', 'wprelay' ), $target ),
				array(
					'event_id' => $event_id,
					'target'   => $target,
				)
			);
		}
		if ( empty( $history ) ) {
			echo '<p class="description">' . esc_html__( 'No attempt yet.', 'wprelay' ) . '</p></div>';
			return;
		}
		$first = (int) ( $d['attempts'] ?? 0 ) - count( $history ) + 1; // The sidecar keeps the most recent attempts.
		echo '<ol class="wprelay-timeline" start="' . esc_attr( (string) max( 1, $first ) ) . '">';
		foreach ( $history as $a ) {
			$code = (int) ( $a['status'] ?? 0 );
			$ok   = $code >= 200 && $code < 300 && empty( $a['error'] );
			echo '<li class="' . esc_attr( $ok ? 'wprelay-ok' : 'wprelay-bad' ) . '">';
			echo WPRelay_Admin_Page::when( (string) ( $a['at'] ?? '' ) ) . ' '; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- when() escapes.
			echo WPRelay_Admin_Page::badge( $ok ? 'ok' : 'failed', 0 === $code ? __( 'no answer', 'wprelay' ) : 'HTTP ' . $code ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- badge() escapes.
			/* translators: %d: milliseconds */
			echo ' <span class="description">' . esc_html( sprintf( __( '%d ms', 'wprelay' ), (int) ( $a['duration_ms'] ?? 0 ) ) ) . '</span>';
			if ( ! empty( $a['error'] ) ) {
				echo ' <span class="wprelay-error">' . esc_html( (string) $a['error'] ) . '</span>';
			}
			if ( ! empty( $a['response'] ) ) {
				echo '<br><code class="wprelay-snippet">' . esc_html( wp_html_excerpt( (string) $a['response'], 300, '…' ) ) . '</code>';
			}
			echo '</li>';
		}
		echo '</ol></div>';
	}

	/**
	 * Returns a link to another event's detail (escaped HTML).
	 *
	 * @param string $id Event id.
	 * @return string
	 */
	private function link( string $id ): string {
		return '<a href="' . esc_url( WPRelay_Admin_Page::url( array( 'event' => $id ) ) ) . '"><code>' . esc_html( $id ) . '</code></a>';
	}
}
