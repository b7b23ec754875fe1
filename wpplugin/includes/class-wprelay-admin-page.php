<?php
/**
 * WPRelay_Admin_Page: Tools → Webhook Relay.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The wp-admin page (manage_options): a health panel (sidecar reachable,
 * constants set, clock skew), the sidecar's events with their deliveries
 * and replay (single, and every dead letter), and the site's outbox with a
 * retry for failed rows. Secrets are shown only as "set" or "not set".
 */
class WPRelay_Admin_Page {

	/** Page slug. */
	const SLUG = 'wprelay';

	/** Capability. */
	const CAP = 'manage_options';

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Outbox.
	 *
	 * @var WPRelay_Outbox
	 */
	private $outbox;

	/**
	 * Sidecar admin API.
	 *
	 * @var WPRelay_Sidecar_Client
	 */
	private $client;

	/**
	 * Builds the page.
	 *
	 * @param WPRelay_Config         $config Settings.
	 * @param WPRelay_Outbox         $outbox Outbox.
	 * @param WPRelay_Sidecar_Client $client Sidecar admin API.
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Outbox $outbox, WPRelay_Sidecar_Client $client ) {
		$this->config = $config;
		$this->outbox = $outbox;
		$this->client = $client;
	}

	/**
	 * Hooks the menu and the form handlers in.
	 */
	public function register_hooks(): void {
		add_action( 'admin_menu', array( $this, 'add_menu' ) );
		add_action( 'admin_post_wprelay_replay', array( $this, 'handle_replay' ) );
		add_action( 'admin_post_wprelay_replay_dlq', array( $this, 'handle_replay_dlq' ) );
		add_action( 'admin_post_wprelay_outbox_retry', array( $this, 'handle_outbox_retry' ) );
	}

	/**
	 * Adds Tools → Webhook Relay.
	 */
	public function add_menu(): void {
		add_management_page( __( 'Webhook Relay', 'wprelay' ), __( 'Webhook Relay', 'wprelay' ), self::CAP, self::SLUG, array( $this, 'render' ) );
	}

	/**
	 * Replays one event.
	 */
	public function handle_replay(): void {
		$this->guard( 'wprelay_replay' );
		$id  = isset( $_POST['event_id'] ) ? sanitize_text_field( wp_unslash( $_POST['event_id'] ) ) : '';
		$res = $this->client->replay( $id );
		$this->back( is_wp_error( $res ) ? $res->get_error_message() : __( 'Replay queued.', 'wprelay' ) );
	}

	/**
	 * Replays every dead letter.
	 */
	public function handle_replay_dlq(): void {
		$this->guard( 'wprelay_replay_dlq' );
		$res = $this->client->replay_dlq();
		/* translators: %d: number of deliveries */
		$this->back( is_wp_error( $res ) ? $res->get_error_message() : sprintf( __( '%d dead deliveries replayed.', 'wprelay' ), (int) ( $res['replayed'] ?? 0 ) ) );
	}

	/**
	 * Makes a failed outbox row pending again.
	 */
	public function handle_outbox_retry(): void {
		$this->guard( 'wprelay_outbox_retry' );
		$id = isset( $_POST['row_id'] ) ? absint( $_POST['row_id'] ) : 0;
		$this->back( $this->outbox->requeue( $id ) ? __( 'The row will be sent on the next cron run.', 'wprelay' ) : __( 'No failed row with that id.', 'wprelay' ) );
	}

	/**
	 * Renders the page.
	 */
	public function render(): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Webhook Relay.', 'wprelay' ) );
		}
		$status = isset( $_GET['status'] ) ? sanitize_key( wp_unslash( $_GET['status'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$source = isset( $_GET['source'] ) ? sanitize_text_field( wp_unslash( $_GET['source'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$notice = isset( $_GET['wprelay_notice'] ) ? sanitize_text_field( wp_unslash( $_GET['wprelay_notice'] ) ) : ''; // phpcs:ignore WordPress.Security.NonceVerification.Recommended
		$health = $this->client->health();
		echo '<div class="wrap"><h1>' . esc_html__( 'Webhook Relay', 'wprelay' ) . '</h1>';
		if ( '' !== $notice ) {
			echo '<div class="notice notice-info"><p>' . esc_html( $notice ) . '</p></div>';
		}

		echo '<h2>' . esc_html__( 'Health', 'wprelay' ) . '</h2><table class="widefat striped"><tbody>';
		$this->row( __( 'Sidecar reachable', 'wprelay' ), $health['reachable'] ? __( 'yes', 'wprelay' ) : __( 'no', 'wprelay' ) . ' — ' . $health['error'] );
		$this->row( __( 'Clock skew', 'wprelay' ), null === $health['skew'] ? '—' : sprintf( '%d s', $health['skew'] ) );
		foreach ( $this->config->status() as $name => $set ) {
			$this->row( $name, $set ? __( 'set', 'wprelay' ) : __( 'not set', 'wprelay' ) );
		}
		$counts = $this->outbox->counts();
		/* translators: 1: pending, 2: sent, 3: failed */
		$this->row( __( 'Outbox', 'wprelay' ), sprintf( __( '%1$d pending, %2$d sent, %3$d failed', 'wprelay' ), $counts['pending'], $counts['sent'], $counts['failed'] ) );
		echo '</tbody></table>';

		echo '<h2>' . esc_html__( 'Events', 'wprelay' ) . '</h2>';
		echo '<form method="get"><input type="hidden" name="page" value="' . esc_attr( self::SLUG ) . '">';
		echo '<select name="status"><option value="">' . esc_html__( 'any status', 'wprelay' ) . '</option>';
		foreach ( array( 'queued', 'delivered', 'failed', 'discarded' ) as $s ) {
			echo '<option value="' . esc_attr( $s ) . '"' . selected( $status, $s, false ) . '>' . esc_html( $s ) . '</option>';
		}
		echo '</select> <input type="text" name="source" placeholder="' . esc_attr__( 'source', 'wprelay' ) . '" value="' . esc_attr( $source ) . '"> ';
		submit_button( __( 'Filter', 'wprelay' ), 'secondary', '', false );
		echo '</form>';
		$events = $this->client->events(
			array(
				'status' => $status,
				'source' => $source,
				'limit'  => 50,
			)
		);
		if ( is_wp_error( $events ) ) {
			echo '<p>' . esc_html( $events->get_error_message() ) . '</p>';
		} else {
			echo '<table class="widefat striped"><thead><tr><th>' . esc_html__( 'Received', 'wprelay' ) . '</th><th>' . esc_html__( 'Source', 'wprelay' ) . '</th><th>' . esc_html__( 'Type', 'wprelay' ) . '</th><th>' . esc_html__( 'Status', 'wprelay' ) . '</th><th>' . esc_html__( 'Deliveries', 'wprelay' ) . '</th><th></th></tr></thead><tbody>';
			foreach ( (array) ( $events['events'] ?? array() ) as $ev ) {
				$deliveries = array();
				foreach ( (array) ( $ev['deliveries'] ?? array() ) as $d ) {
					$deliveries[] = sprintf( '%s: %s (%d) %s', $d['target'] ?? '', $d['status'] ?? '', (int) ( $d['attempts'] ?? 0 ), $d['last_error'] ?? '' );
				}
				echo '<tr><td>' . esc_html( $ev['received_at'] ?? '' ) . '</td><td>' . esc_html( ( $ev['source'] ?? '' ) . ( empty( $ev['tenant'] ) ? '' : '/' . $ev['tenant'] ) ) . '</td><td>' . esc_html( $ev['type'] ?? '' ) . '</td><td>' . esc_html( $ev['status'] ?? '' ) . '</td><td>' . esc_html( implode( '; ', $deliveries ) ) . '</td><td>';
				$this->button( 'wprelay_replay', __( 'Replay', 'wprelay' ), array( 'event_id' => $ev['id'] ?? '' ) );
				echo '</td></tr>';
			}
			echo '</tbody></table><p>';
			$this->button( 'wprelay_replay_dlq', __( 'Replay all dead letters', 'wprelay' ), array() );
			echo '</p>';
		}

		echo '<h2>' . esc_html__( 'Outbox', 'wprelay' ) . '</h2><table class="widefat striped"><thead><tr><th>ID</th><th>' . esc_html__( 'Type', 'wprelay' ) . '</th><th>' . esc_html__( 'Object', 'wprelay' ) . '</th><th>' . esc_html__( 'State', 'wprelay' ) . '</th><th>' . esc_html__( 'Attempts', 'wprelay' ) . '</th><th>' . esc_html__( 'Next attempt (UTC)', 'wprelay' ) . '</th><th>' . esc_html__( 'Last error', 'wprelay' ) . '</th><th></th></tr></thead><tbody>';
		foreach ( $this->outbox->recent( 50 ) as $row ) {
			echo '<tr><td>' . esc_html( $row['id'] ) . '</td><td>' . esc_html( $row['event_type'] ) . '</td><td>' . esc_html( $row['object_ref'] ) . '</td><td>' . esc_html( $row['state'] ) . '</td><td>' . esc_html( $row['attempts'] ) . '</td><td>' . esc_html( 'pending' === $row['state'] ? $row['next_at'] : '' ) . '</td><td>' . esc_html( (string) $row['last_error'] ) . '</td><td>';
			if ( 'failed' === $row['state'] ) {
				$this->button( 'wprelay_outbox_retry', __( 'Retry', 'wprelay' ), array( 'row_id' => $row['id'] ) );
			}
			echo '</td></tr>';
		}
		echo '</tbody></table></div>';
	}

	/**
	 * Prints one row of the health table.
	 *
	 * @param string $label Label.
	 * @param string $value Value.
	 */
	private function row( string $label, string $value ): void {
		echo '<tr><th scope="row">' . esc_html( $label ) . '</th><td>' . esc_html( $value ) . '</td></tr>';
	}

	/**
	 * Prints a one-button form posting to admin-post.php.
	 *
	 * @param string $action Action name (also the nonce action).
	 * @param string $label  Button label.
	 * @param array  $fields Hidden fields.
	 */
	private function button( string $action, string $label, array $fields ): void {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" style="display:inline">';
		echo '<input type="hidden" name="action" value="' . esc_attr( $action ) . '">';
		foreach ( $fields as $k => $v ) {
			echo '<input type="hidden" name="' . esc_attr( $k ) . '" value="' . esc_attr( (string) $v ) . '">';
		}
		wp_nonce_field( $action );
		submit_button( $label, 'small', '', false );
		echo '</form>';
	}

	/**
	 * Checks the capability and the nonce of a form post.
	 *
	 * @param string $action Nonce action.
	 */
	private function guard( string $action ): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Webhook Relay.', 'wprelay' ), 403 );
		}
		check_admin_referer( $action );
	}

	/**
	 * Redirects back to the page with a notice.
	 *
	 * @param string $notice Message.
	 */
	private function back( string $notice ): void {
		wp_safe_redirect( add_query_arg( array( 'page' => self::SLUG, 'wprelay_notice' => rawurlencode( $notice ) ), admin_url( 'tools.php' ) ) );
		exit;
	}
}
