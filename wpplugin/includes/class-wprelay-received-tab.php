<?php
/**
 * WPRelay_Received_Tab: the plugin page's "Received" tab.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Shows what the sidecar delivered to this site and how its wprelay_event
 * handlers fared: counts by status, the receipts being retried (attempts,
 * next attempt, last error) and the failed ones, each with a Replay button
 * that makes it due again with a fresh set of attempts.
 */
class WPRelay_Received_Tab {

	/** Tab slug on the plugin page. */
	const TAB = 'received';

	/** Rows shown per list. */
	const LIMIT = 50;

	/**
	 * Receipts store.
	 *
	 * @var WPRelay_Receipts
	 */
	private $receipts;

	/**
	 * Dispatcher (replay).
	 *
	 * @var WPRelay_Dispatcher
	 */
	private $dispatcher;

	/**
	 * Builds the tab.
	 *
	 * @param WPRelay_Receipts   $receipts   Receipts store.
	 * @param WPRelay_Dispatcher $dispatcher Dispatcher.
	 */
	public function __construct( WPRelay_Receipts $receipts, WPRelay_Dispatcher $dispatcher ) {
		$this->receipts   = $receipts;
		$this->dispatcher = $dispatcher;
	}

	/**
	 * Hooks the Replay form handler in.
	 */
	public function register_hooks(): void {
		add_action( 'admin_post_wprelay_receipt_replay', array( $this, 'handle_replay' ) );
	}

	/**
	 * Replays one failed receipt (form post from this tab).
	 */
	public function handle_replay(): void {
		if ( ! current_user_can( WPRelay_Admin_Page::CAP ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Webhook Relay.', 'wprelay' ), 403 );
		}
		check_admin_referer( 'wprelay_receipt_replay' );
		$id   = isset( $_POST['receipt_id'] ) ? absint( $_POST['receipt_id'] ) : 0;
		$done = $this->dispatcher->replay( $id ) ? 'yes' : 'no';
		wp_safe_redirect(
			WPRelay_Admin_Page::url(
				array(
					'tab'             => self::TAB,
					'wprelay_receipt' => $id,
					'wprelay_queued'  => $done,
				)
			)
		);
		exit;
	}

	/**
	 * Prints the tab.
	 */
	public function render(): void {
		$queued = WPRelay_Admin_Page::arg( 'wprelay_queued' );
		if ( '' !== $queued ) {
			$id = absint( WPRelay_Admin_Page::arg( 'wprelay_receipt', '0' ) );
			/* translators: %d: receipt id */
			$msg = 'yes' === $queued ? sprintf( __( 'Receipt %d is due again: its handlers run at the next dispatch job (WP-Cron or Action Scheduler).', 'wprelay' ), $id ) : sprintf( __( 'Receipt %d is not failed (it was replayed already, or is being dispatched).', 'wprelay' ), $id );
			echo '<div class="notice notice-' . ( 'yes' === $queued ? 'success' : 'warning' ) . ' is-dismissible" id="wprelay-notice"><p>' . esc_html( $msg ) . '</p></div>';
		}
		$counts = $this->receipts->counts();
		echo '<p id="wprelay-received-counts">';
		foreach ( array( 'stored', 'dispatching', 'done', 'failed' ) as $status ) {
			echo '<span class="wprelay-count-' . esc_attr( $status ) . '">' . esc_html( $status ) . ': ' . esc_html( (string) ( $counts[ $status ] ?? 0 ) ) . '</span> ';
		}
		echo '</p><p class="description">' . esc_html__( 'Each event\'s handlers run in one database transaction with its receipt: a handler that throws or whose process dies is rolled back and retried (after 10 s, 1 min, 5 min, 30 min, 2 h), then the event is failed and listed here until you replay it.', 'wprelay' ) . '</p>';
		echo '<h2>' . esc_html__( 'Failed', 'wprelay' ) . '</h2>';
		$this->table( $this->receipts->in_status( 'failed', self::LIMIT ), true, 'wprelay-received-failed' );
		echo '<h2>' . esc_html__( 'Waiting for a retry', 'wprelay' ) . '</h2>';
		$retrying = array_values( array_filter( $this->receipts->in_status( 'stored', self::LIMIT ), static fn( $r ) => (int) $r['attempts'] > 0 ) );
		$this->table( $retrying, false, 'wprelay-received-retrying' );
	}

	/**
	 * Prints a list of receipts.
	 *
	 * @param array[] $rows   Receipts.
	 * @param bool    $replay Whether each row gets a Replay button.
	 * @param string  $id     Table element id.
	 */
	private function table( array $rows, bool $replay, string $id ): void {
		if ( empty( $rows ) ) {
			echo '<p id="' . esc_attr( $id ) . '">' . esc_html__( 'None.', 'wprelay' ) . '</p>';
			return;
		}
		echo '<table class="widefat striped" id="' . esc_attr( $id ) . '"><thead><tr>';
		foreach ( array( __( 'Receipt', 'wprelay' ), __( 'Event', 'wprelay' ), __( 'Type', 'wprelay' ), __( 'Received', 'wprelay' ), __( 'Attempts', 'wprelay' ), __( 'Next attempt', 'wprelay' ), __( 'Last error', 'wprelay' ), '' ) as $th ) {
			echo '<th scope="col">' . esc_html( $th ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		foreach ( $rows as $r ) {
			echo '<tr><td>' . esc_html( $r['id'] ) . '</td><td><code>' . esc_html( $r['event_id'] ) . '</code></td><td>' . esc_html( $r['event_type'] ) . '</td><td>' . esc_html( $r['received_at'] ) . ' UTC</td><td>' . esc_html( $r['attempts'] ) . '</td><td>' . esc_html( $replay ? '' : (string) $r['next_at'] . ' UTC' ) . '</td><td>' . esc_html( (string) $r['last_error'] ) . '</td><td>';
			if ( $replay ) {
				echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '"><input type="hidden" name="action" value="wprelay_receipt_replay"><input type="hidden" name="receipt_id" value="' . esc_attr( $r['id'] ) . '">';
				wp_nonce_field( 'wprelay_receipt_replay' );
				echo '<button type="submit" class="button">' . esc_html__( 'Replay', 'wprelay' ) . '</button></form>';
			}
			echo '</td></tr>';
		}
		echo '</tbody></table>';
	}
}
