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
 * The wp-admin page (manage_options), in five tabs: Events (the sidecar's
 * events, filtered and paged by cursor, each with its detail and a Replay
 * button), Dead letters (with bulk replay), Outbox (what WordPress emitted,
 * with "retry now"), Received (what was delivered here and how its
 * handlers fared: retries, failed events with Replay) and Health (sidecar reachable, version, constants set,
 * clock skew, queue, breakers).
 *
 * Everything works without JavaScript: links and forms. Actions post to
 * admin-post.php with a nonce, check the capability, and redirect back with
 * a notice code (never free text in the URL). Every value printed is
 * escaped; secrets are shown only as "set" or "not set".
 */
class WPRelay_Admin_Page {

	/** Page slug. */
	const SLUG = 'wprelay';

	/** Capability. */
	const CAP = 'manage_options';

	/** The page's hook suffix (Tools submenu). */
	const HOOK = 'tools_page_wprelay';

	/** Rows per page of the event and dead-letter lists. */
	const PER_PAGE = 25;

	/** Clock skew beyond which tokens start to fail (the sidecar's JWT leeway). */
	const SKEW_WARN = 30;

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
	 * Sender, for "retry now" on outbox rows.
	 *
	 * @var WPRelay_Sender
	 */
	private $sender;

	/**
	 * Health checks, for the notice about rows that failed for good.
	 *
	 * @var WPRelay_Health|null
	 */
	private $health;

	/**
	 * The Received tab (receipts and their dispatch), when given.
	 *
	 * @var WPRelay_Received_Tab|null
	 */
	private $received;

	/**
	 * Builds the page.
	 *
	 * @param WPRelay_Config            $config   Settings.
	 * @param WPRelay_Outbox            $outbox   Outbox.
	 * @param WPRelay_Sidecar_Client    $client   Sidecar admin API.
	 * @param WPRelay_Sender            $sender   Sender.
	 * @param WPRelay_Health|null       $health   Health checks.
	 * @param WPRelay_Received_Tab|null $received The Received tab.
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Outbox $outbox, WPRelay_Sidecar_Client $client, WPRelay_Sender $sender, ?WPRelay_Health $health = null, ?WPRelay_Received_Tab $received = null ) {
		$this->config   = $config;
		$this->outbox   = $outbox;
		$this->client   = $client;
		$this->sender   = $sender;
		$this->health   = $health;
		$this->received = $received;
	}

	/**
	 * Hooks the menu, the stylesheet and the form handlers in.
	 */
	public function register_hooks(): void {
		add_action( 'admin_menu', array( $this, 'add_menu' ) );
		add_action( 'admin_enqueue_scripts', array( $this, 'enqueue' ) );
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
	 * Adds the page's stylesheet, on this page only.
	 *
	 * @param string $hook_suffix The current admin page.
	 */
	public function enqueue( $hook_suffix ): void {
		if ( self::HOOK === $hook_suffix ) {
			wp_enqueue_style( 'wprelay-admin', plugins_url( 'assets/admin.css', WPRELAY_DIR . '/wprelay.php' ), array(), WPRELAY_VERSION );
		}
	}

	// ---------------------------------------------------------------- actions

	/**
	 * Replays one event: all its deliveries, or the one to a target.
	 */
	public function handle_replay(): void {
		$this->guard();
		check_admin_referer( 'wprelay_replay' );
		$id     = isset( $_POST['event_id'] ) ? sanitize_text_field( wp_unslash( $_POST['event_id'] ) ) : '';
		$target = isset( $_POST['target'] ) ? sanitize_text_field( wp_unslash( $_POST['target'] ) ) : '';
		$res    = $this->client->replay( $id, $target );
		if ( is_wp_error( $res ) ) {
			$this->back( array( 'wprelay_error' => $this->error_code( $res ) ) );
		}
		$this->back(
			array(
				'wprelay_done' => 'replayed',
				'wprelay_n'    => (int) ( $res['replayed'] ?? 0 ),
			)
		);
	}

	/**
	 * Replays the dead letters matching the form's filter.
	 */
	public function handle_replay_dlq(): void {
		$this->guard();
		check_admin_referer( 'wprelay_replay_dlq' );
		$filter = array();
		foreach ( array( 'source', 'target' ) as $k ) {
			$filter[ $k ] = isset( $_POST[ $k ] ) ? sanitize_text_field( wp_unslash( $_POST[ $k ] ) ) : '';
		}
		$since = isset( $_POST['since'] ) ? absint( $_POST['since'] ) : 0;
		if ( $since > 0 ) {
			$filter['since'] = gmdate( 'Y-m-d\TH:i:s\Z', time() - $since );
		}
		$res = $this->client->replay_dlq( $filter );
		if ( is_wp_error( $res ) ) {
			$this->back( array( 'wprelay_error' => $this->error_code( $res ) ) );
		}
		$this->back(
			array(
				'wprelay_done' => 'dlq_replayed',
				'wprelay_n'    => (int) ( $res['replayed'] ?? 0 ),
			)
		);
	}

	/**
	 * Sends an outbox row now: a failed row gets a fresh attempt budget,
	 * a pending one stops waiting for its next attempt.
	 */
	public function handle_outbox_retry(): void {
		$this->guard();
		check_admin_referer( 'wprelay_outbox_retry' );
		$id = isset( $_POST['row_id'] ) ? absint( $_POST['row_id'] ) : 0;
		if ( ! $this->outbox->due_now( $id ) ) {
			$this->back( array( 'wprelay_done' => 'outbox_none' ) );
		}
		$out     = $this->sender->send( array( $id ) );
		$outcome = $out[ $id ] ?? 'busy';
		$this->back(
			array(
				'wprelay_done' => 'outbox_' . sanitize_key( $outcome ),
				'wprelay_row'  => $id,
			)
		);
	}

	/**
	 * Checks the capability of a form post (each handler then checks its
	 * nonce with check_admin_referer(), where the sniffs can see it).
	 */
	private function guard(): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Webhook Relay.', 'wprelay' ), 403 );
		}
	}

	/**
	 * Redirects back to the page the form was on, with a notice.
	 *
	 * @param array $args Notice query arguments.
	 */
	private function back( array $args ): void {
		$to = wp_get_referer();
		if ( ! $to || false === strpos( $to, 'page=' . self::SLUG ) ) {
			$to = self::url();
		}
		$to = remove_query_arg( array( 'wprelay_done', 'wprelay_n', 'wprelay_error', 'wprelay_row' ), $to );
		wp_safe_redirect( add_query_arg( $args, $to ) );
		exit;
	}

	/**
	 * Returns the short code of a client error, for the redirect.
	 *
	 * @param WP_Error $err Error.
	 * @return string
	 */
	private function error_code( WP_Error $err ): string {
		return sanitize_key( preg_replace( '/^wprelay_/', '', (string) $err->get_error_code() ) );
	}

	// ----------------------------------------------------------------- render

	/**
	 * Renders the page.
	 */
	public function render(): void {
		if ( ! current_user_can( self::CAP ) ) {
			wp_die( esc_html__( 'Sorry, you are not allowed to manage Webhook Relay.', 'wprelay' ) );
		}
		require_once ABSPATH . 'wp-admin/includes/class-wp-list-table.php';
		require_once WPRELAY_DIR . '/includes/class-wprelay-events-list-table.php';
		require_once WPRELAY_DIR . '/includes/class-wprelay-dead-letters-list-table.php';

		$tab   = self::arg( 'tab', 'events' );
		$event = self::arg( 'event' );
		echo '<div class="wrap wprelay">';
		echo '<h1>' . esc_html__( 'Webhook Relay', 'wprelay' ) . '</h1>';
		$this->notice();
		$this->failure_notice();
		$this->tabs( '' !== $event ? 'events' : $tab );
		if ( '' !== $event ) {
			require_once WPRELAY_DIR . '/includes/class-wprelay-event-detail.php';
			( new WPRelay_Event_Detail( $this->client, array( $this, 'explain' ) ) )->render( $event );
		} elseif ( 'dlq' === $tab ) {
			$this->render_dead_letters();
		} elseif ( 'outbox' === $tab ) {
			$this->render_outbox();
		} elseif ( 'health' === $tab ) {
			$this->render_health();
		} elseif ( WPRelay_Received_Tab::TAB === $tab && null !== $this->received ) {
			$this->received->render();
		} else {
			$this->render_events();
		}
		echo '</div>';
	}

	/**
	 * Prints the tab links.
	 *
	 * @param string $current The current tab.
	 */
	private function tabs( string $current ): void {
		$tabs = array(
			'events'   => __( 'Events', 'wprelay' ),
			'dlq'      => __( 'Dead letters', 'wprelay' ),
			'outbox'   => __( 'Outbox', 'wprelay' ),
			'received' => __( 'Received', 'wprelay' ),
			'health'   => __( 'Health', 'wprelay' ),
		);
		echo '<nav class="nav-tab-wrapper wp-clearfix" aria-label="' . esc_attr__( 'Webhook Relay sections', 'wprelay' ) . '">';
		foreach ( $tabs as $slug => $label ) {
			$class = 'nav-tab' . ( $slug === $current ? ' nav-tab-active' : '' );
			$aria  = $slug === $current ? ' aria-current="page"' : '';
			echo '<a id="wprelay-tab-' . esc_attr( $slug ) . '" class="' . esc_attr( $class ) . '" href="' . esc_url( self::url( array( 'tab' => $slug ) ) ) . '"' . $aria . '>' . esc_html( $label ) . '</a>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- $aria is a constant string.
		}
		echo '</nav>';
	}

	/**
	 * Prints the notice an action redirected back with.
	 */
	private function notice(): void {
		$done  = self::arg( 'wprelay_done' );
		$error = self::arg( 'wprelay_error' );
		$n     = absint( self::arg( 'wprelay_n', '0' ) );
		if ( '' !== $error ) {
			$this->problem( new WP_Error( 'wprelay_' . sanitize_key( $error ), '' ), __( 'The action was not done.', 'wprelay' ) );
			return;
		}
		$row = absint( self::arg( 'wprelay_row', '0' ) );
		switch ( $done ) {
			case 'replayed':
				/* translators: %d: number of deliveries */
				$msg = sprintf( _n( 'Replay queued: %d delivery is due now, with the same Idempotency-Key as before.', 'Replay queued: %d deliveries are due now, with the same Idempotency-Keys as before.', $n, 'wprelay' ), $n );
				break;
			case 'dlq_replayed':
				/* translators: %d: number of deliveries */
				$msg = sprintf( _n( '%d dead delivery replayed.', '%d dead deliveries replayed.', $n, 'wprelay' ), $n );
				break;
			case 'outbox_sent':
				/* translators: %d: outbox row id */
				$msg = sprintf( __( 'Outbox row %d was sent: the sidecar has it.', 'wprelay' ), $row );
				break;
			case 'outbox_retry':
			case 'outbox_failed':
				$r = $this->outbox->get( $row );
				/* translators: 1: outbox row id, 2: the error */
				$msg  = sprintf( __( 'Outbox row %1$d was not taken: %2$s', 'wprelay' ), $row, null === $r ? '' : (string) $r['last_error'] );
				$msg .= ' ' . ( 'outbox_retry' === $done ? __( 'It will be retried from WP-Cron.', 'wprelay' ) : __( 'The sidecar refused it for good; fix the cause and retry.', 'wprelay' ) );
				echo '<div class="notice notice-warning is-dismissible" id="wprelay-notice"><p>' . esc_html( $msg ) . '</p></div>';
				return;
			case 'outbox_none':
			case 'outbox_busy':
				$msg = __( 'That outbox row is not waiting to be sent (it was sent already, or another process is sending it).', 'wprelay' );
				break;
			default:
				return;
		}
		echo '<div class="notice notice-success is-dismissible" id="wprelay-notice"><p>' . esc_html( $msg ) . '</p></div>';
	}

	/**
	 * Prints a notice while rows have failed for good (the outbox's failed
	 * rows, and any check added with `wprelay_failure_checks`), on every
	 * tab, until they are retried or purged.
	 */
	private function failure_notice(): void {
		if ( null === $this->health ) {
			return;
		}
		/**
		 * Filters the health checks whose critical result the plugin page
		 * shows as a notice on every tab.
		 *
		 * @since 0.2.0
		 *
		 * @param string[] $ids Check ids. Default array( 'outbox_failed', 'received_failed' ).
		 */
		$ids = (array) apply_filters( 'wprelay_failure_checks', array( 'outbox_failed', 'received_failed' ) );
		foreach ( $ids as $id ) {
			$r = $this->health->run( (string) $id );
			if ( null !== $r && 'critical' === $r['status'] ) {
				echo '<div class="notice notice-error" id="wprelay-failed-' . esc_attr( (string) $id ) . '"><p><strong>' . esc_html( $r['label'] ) . '</strong> ' . esc_html( $r['description'] ) . '</p></div>';
			}
		}
	}

	/**
	 * Prints an error notice that says what went wrong and what to do.
	 *
	 * @param WP_Error $err  The client's error.
	 * @param string   $lead What could not be done.
	 */
	private function problem( WP_Error $err, string $lead ): void {
		echo '<div class="notice notice-error" id="wprelay-problem"><p><strong>' . esc_html( $lead ) . '</strong> ' . esc_html( $this->explain( $err ) ) . '</p></div>';
	}

	/**
	 * Explains a client error and the next step.
	 *
	 * @param WP_Error $err The client's error.
	 * @return string
	 */
	public function explain( WP_Error $err ): string {
		$url    = $this->config->get( 'WPRELAY_ADMIN_URL' );
		$detail = $err->get_error_message();
		switch ( $err->get_error_code() ) {
			case 'wprelay_not_configured':
				return __( 'Set WPRELAY_ADMIN_URL (e.g. http://127.0.0.1:8081) and WPRELAY_ADMIN_TOKEN in wp-config.php; "wprelay init" prints both lines.', 'wprelay' );
			case 'wprelay_url_refused':
				/* translators: %s: the admin API URL */
				return sprintf( __( 'WordPress refuses to call the admin API at %s. Check WPRELAY_ADMIN_URL: scheme, host and port as in admin.listen of wprelay.yaml; the host must resolve from this server.', 'wprelay' ), $url );
			case 'wprelay_unreachable':
				/* translators: 1: the admin API URL, 2: the connection error */
				return sprintf( __( 'The sidecar does not answer at %1$s (%2$s). Is wprelay running? On its host: "systemctl status wprelay", or "curl %1$s/readyz". WPRELAY_ADMIN_URL must match admin.listen in wprelay.yaml. Events keep waiting in the outbox meanwhile.', 'wprelay' ), $url, '' === $detail ? __( 'no connection', 'wprelay' ) : $detail );
			case 'wprelay_unauthorized':
				return __( 'The sidecar refused the admin token: WPRELAY_ADMIN_TOKEN in wp-config.php must be exactly admin.token of wprelay.yaml (the sidecar\'s WPRELAY_ADMIN_TOKEN). Copy it again, without spaces.', 'wprelay' );
			case 'wprelay_api_not_found':
				return __( 'The sidecar has no such event or delivery: it may have been pruned (retention.events), or the link is old.', 'wprelay' );
			case 'wprelay_api_nothing_to_replay':
				return __( 'Nothing to replay right now: the deliveries are in flight or dry-run. Try again in a moment.', 'wprelay' );
			case 'wprelay_api_unavailable':
				/* translators: %s: the sidecar's message */
				return sprintf( __( 'The sidecar is up but could not answer (%s); see its log.', 'wprelay' ), '' === $detail ? __( 'store unavailable', 'wprelay' ) : $detail );
		}
		return '' === $detail ? __( 'The sidecar answered with an error; see its log.', 'wprelay' ) : $detail;
	}

	/**
	 * Renders the Events tab: filters, the list, cursor links.
	 */
	private function render_events(): void {
		$filters = array(
			'status' => self::arg( 'status' ),
			'source' => self::arg( 'source' ),
			'type'   => self::arg( 'type' ),
		);
		if ( ! in_array( $filters['status'], array( '', 'queued', 'delivered', 'failed', 'discarded' ), true ) ) {
			$filters['status'] = '';
		}
		echo '<form method="get" class="wprelay-filters" id="wprelay-event-filters">';
		echo '<input type="hidden" name="page" value="' . esc_attr( self::SLUG ) . '">';
		echo '<label for="wprelay-status">' . esc_html__( 'Status', 'wprelay' ) . '</label> <select name="status" id="wprelay-status"><option value="">' . esc_html__( 'any', 'wprelay' ) . '</option>';
		foreach ( array( 'queued', 'delivered', 'failed', 'discarded' ) as $s ) {
			echo '<option value="' . esc_attr( $s ) . '"' . selected( $filters['status'], $s, false ) . '>' . esc_html( $s ) . '</option>';
		}
		echo '</select> ';
		echo '<label for="wprelay-source">' . esc_html__( 'Source', 'wprelay' ) . '</label> <input type="text" name="source" id="wprelay-source" size="12" value="' . esc_attr( $filters['source'] ) . '"> ';
		echo '<label for="wprelay-type">' . esc_html__( 'Type', 'wprelay' ) . '</label> <input type="text" name="type" id="wprelay-type" size="20" placeholder="' . esc_attr__( 'e.g. invoice.paid', 'wprelay' ) . '" value="' . esc_attr( $filters['type'] ) . '"> ';
		submit_button( __( 'Filter', 'wprelay' ), 'secondary', '', false );
		if ( '' !== implode( '', $filters ) ) {
			echo ' <a class="button-link" href="' . esc_url( self::url() ) . '">' . esc_html__( 'Clear', 'wprelay' ) . '</a>';
		}
		echo '</form>';

		$query = array_merge(
			$filters,
			array(
				'limit'  => $this->per_page(),
				'cursor' => self::arg( 'cursor' ),
			)
		);
		$page  = $this->client->events( $query );
		if ( is_wp_error( $page ) ) {
			$this->problem( $page, __( 'The events cannot be listed.', 'wprelay' ) );
			return;
		}
		$table = new WPRelay_Events_List_Table( (array) ( $page['events'] ?? array() ), (string) ( $page['next_cursor'] ?? '' ) );
		$table->prepare_items();
		$table->display();
	}

	/**
	 * Renders the Dead letters tab: filters, bulk replay, the list.
	 */
	private function render_dead_letters(): void {
		$source = self::arg( 'source' );
		$target = self::arg( 'target' );
		echo '<p>' . esc_html__( 'Deliveries that gave up: a final 4xx answer, too many attempts, or too old. Fix the cause (the target, its credentials, the route), then replay: each is sent again with the same Idempotency-Key.', 'wprelay' ) . '</p>';
		echo '<form method="get" class="wprelay-filters" id="wprelay-dlq-filters">';
		echo '<input type="hidden" name="page" value="' . esc_attr( self::SLUG ) . '"><input type="hidden" name="tab" value="dlq">';
		echo '<label for="wprelay-dlq-source">' . esc_html__( 'Source', 'wprelay' ) . '</label> <input type="text" name="source" id="wprelay-dlq-source" size="12" value="' . esc_attr( $source ) . '"> ';
		echo '<label for="wprelay-dlq-target">' . esc_html__( 'Target', 'wprelay' ) . '</label> <input type="text" name="target" id="wprelay-dlq-target" size="12" value="' . esc_attr( $target ) . '"> ';
		submit_button( __( 'Filter', 'wprelay' ), 'secondary', '', false );
		echo '</form>';

		$page = $this->client->dead_letters(
			array(
				'source' => $source,
				'target' => $target,
				'limit'  => $this->per_page(),
				'cursor' => self::arg( 'cursor' ),
			)
		);
		if ( is_wp_error( $page ) ) {
			$this->problem( $page, __( 'The dead letters cannot be listed.', 'wprelay' ) );
			return;
		}
		$rows = (array) ( $page['deliveries'] ?? array() );
		if ( ! empty( $rows ) ) {
			echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" class="wprelay-bulk" id="wprelay-dlq-replay">';
			echo '<input type="hidden" name="action" value="wprelay_replay_dlq">';
			echo '<input type="hidden" name="source" value="' . esc_attr( $source ) . '"><input type="hidden" name="target" value="' . esc_attr( $target ) . '">';
			wp_nonce_field( 'wprelay_replay_dlq' );
			echo '<label for="wprelay-dlq-since">' . esc_html__( 'Replay every dead letter of this filter that died', 'wprelay' ) . '</label> <select name="since" id="wprelay-dlq-since">';
			foreach ( array(
				0      => __( 'at any time', 'wprelay' ),
				3600   => __( 'in the last hour', 'wprelay' ),
				86400  => __( 'in the last 24 hours', 'wprelay' ),
				604800 => __( 'in the last 7 days', 'wprelay' ),
			) as $secs => $label ) {
				echo '<option value="' . esc_attr( (string) $secs ) . '">' . esc_html( $label ) . '</option>';
			}
			echo '</select> ';
			$what = '' === $source . $target ? __( 'Replay all dead letters', 'wprelay' ) : __( 'Replay all matching dead letters', 'wprelay' );
			submit_button( $what, 'primary', 'wprelay-replay-all', false );
			echo '</form>';
		}
		$table = new WPRelay_Dead_Letters_List_Table( $rows, (string) ( $page['next_cursor'] ?? '' ) );
		$table->prepare_items();
		$table->display();
	}

	/**
	 * Renders the Outbox tab: what WordPress emitted, by state.
	 */
	private function render_outbox(): void {
		$state  = self::arg( 'state' );
		$counts = $this->outbox->counts();
		if ( ! isset( $counts[ $state ] ) ) {
			$state = '';
		}
		echo '<p>' . esc_html__( 'Events this site emitted (post published, user registered, …) and whether the sidecar took them. Pending rows are retried from WP-Cron with backoff; failed rows were refused for good (a 4xx) or ran out of attempts.', 'wprelay' ) . '</p>';
		echo '<ul class="subsubsub">';
		$links = array( '' => array( __( 'All', 'wprelay' ), array_sum( $counts ) ) );
		foreach ( $counts as $s => $n ) {
			$links[ $s ] = array( $s, $n );
		}
		$i = 0;
		foreach ( $links as $s => $link ) {
			$class = $s === $state ? ' class="current" aria-current="page"' : '';
			echo '<li><a href="' . esc_url(
				self::url(
					array(
						'tab'   => 'outbox',
						'state' => $s,
					)
				)
			) . '"' . $class . '>' . esc_html( $link[0] ) . ' <span class="count">(' . esc_html( (string) $link[1] ) . ')</span></a>' . ( ++$i < count( $links ) ? ' |' : '' ) . '</li>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- $class is a constant string.
		}
		echo '</ul><br class="clear">';
		$rows = $this->outbox->recent( 50, $state );
		echo '<table class="widefat striped wprelay-outbox" id="wprelay-outbox"><thead><tr>';
		foreach ( array( __( 'Row', 'wprelay' ), __( 'Type', 'wprelay' ), __( 'Object', 'wprelay' ), __( 'State', 'wprelay' ), __( 'Attempts', 'wprelay' ), __( 'Next attempt', 'wprelay' ), __( 'Last error', 'wprelay' ), __( 'Created', 'wprelay' ), '' ) as $h ) {
			echo '<th scope="col">' . esc_html( $h ) . '</th>';
		}
		echo '</tr></thead><tbody>';
		if ( empty( $rows ) ) {
			echo '<tr><td colspan="9">' . esc_html__( 'Nothing emitted yet.', 'wprelay' ) . '</td></tr>';
		}
		foreach ( $rows as $row ) {
			echo '<tr data-row-id="' . esc_attr( $row['id'] ) . '"><td>' . esc_html( $row['id'] ) . '</td><td>' . esc_html( $row['event_type'] ) . '</td><td>' . esc_html( $row['object_ref'] ) . '</td>';
			echo '<td>' . self::badge( (string) $row['state'] ) . '</td>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- badge() escapes.
			echo '<td>' . esc_html( $row['attempts'] ) . '</td><td>' . ( 'pending' === $row['state'] ? self::when( $row['next_at'] . ' UTC' ) : '—' ) . '</td>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- when() escapes.
			echo '<td class="wprelay-error">' . esc_html( (string) $row['last_error'] ) . '</td><td>' . self::when( $row['created_at'] . ' UTC' ) . '</td><td>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- when() escapes.
			if ( 'sent' !== $row['state'] ) {
				self::button( 'wprelay_outbox_retry', __( 'Retry now', 'wprelay' ), array( 'row_id' => $row['id'] ) );
			}
			echo '</td></tr>';
		}
		echo '</tbody></table>';
	}

	/**
	 * Renders the Health tab.
	 */
	private function render_health(): void {
		$ready  = $this->client->ready();
		$stats  = $this->client->stats();
		$skew   = $this->client->skew();
		$public = $this->client->public_health();

		echo '<h2>' . esc_html__( 'Sidecar', 'wprelay' ) . '</h2><table class="widefat striped wprelay-facts" id="wprelay-health"><tbody>';
		if ( is_wp_error( $ready ) ) {
			$this->fact( __( 'Admin API', 'wprelay' ), self::badge( 'unreachable', __( 'not reachable', 'wprelay' ) ) . ' ' . esc_html( $this->explain( $ready ) ), 'wprelay-health-admin' );
		} else {
			$state = 'ready' === ( $ready['status'] ?? '' ) ? self::badge( 'ready', __( 'reachable, ready', 'wprelay' ) ) : self::badge( 'unavailable', __( 'reachable, not ready', 'wprelay' ) ) . ' ' . esc_html( (string) ( $ready['reason'] ?? '' ) );
			$this->fact( __( 'Admin API', 'wprelay' ), $state . ' <code>' . esc_html( $this->config->get( 'WPRELAY_ADMIN_URL' ) ) . '</code>', 'wprelay-health-admin' );
			$this->fact( __( 'Version', 'wprelay' ), esc_html( (string) ( $ready['version'] ?? '' ) ), 'wprelay-health-version' );
		}
		if ( is_wp_error( $stats ) ) {
			$this->fact( __( 'Admin token', 'wprelay' ), 'wprelay_unauthorized' === $stats->get_error_code() ? self::badge( 'failed', __( 'refused', 'wprelay' ) ) . ' ' . esc_html( $this->explain( $stats ) ) : '—', 'wprelay-health-token' );
		} else {
			$this->fact( __( 'Admin token', 'wprelay' ), self::badge( 'ok', __( 'accepted', 'wprelay' ) ), 'wprelay-health-token' );
		}
		$pub = $public['reachable'] ? self::badge( 'ok', __( 'reachable', 'wprelay' ) ) : self::badge( 'failed', __( 'not reachable', 'wprelay' ) ) . ' ' . esc_html( $public['error'] . ' ' . __( 'Events this site emits wait in the outbox until it is.', 'wprelay' ) );
		$this->fact( __( 'Webhook listener (events from this site)', 'wprelay' ), $pub . ' <code>' . esc_html( $this->config->sidecar_url() ) . '</code>', 'wprelay-health-public' );
		if ( null === $skew ) {
			$this->fact( __( 'Clock skew', 'wprelay' ), '—', 'wprelay-health-skew' );
		} else {
			/* translators: %d: seconds */
			$text = sprintf( __( '%d s (this site minus the sidecar, from its Date header)', 'wprelay' ), $skew );
			$ok   = abs( $skew ) <= self::SKEW_WARN;
			$this->fact( __( 'Clock skew', 'wprelay' ), self::badge( $ok ? 'ok' : 'failed', $ok ? __( 'fine', 'wprelay' ) : __( 'too large', 'wprelay' ) ) . ' ' . esc_html( $text . ( $ok ? '' : ' ' . __( 'Tokens allow 30 s of skew: sync both clocks (NTP).', 'wprelay' ) ) ), 'wprelay-health-skew' );
		}
		if ( ! is_wp_error( $stats ) ) {
			$depth = (int) ( $stats['queue_depth'] ?? 0 );
			$text  = (string) $depth;
			if ( isset( $stats['oldest_pending_age_seconds'] ) ) {
				/* translators: %s: a duration */
				$text .= ' ' . sprintf( __( '(the oldest has waited %s)', 'wprelay' ), human_time_diff( 0, (int) $stats['oldest_pending_age_seconds'] ) );
			}
			$this->fact( __( 'Queue depth', 'wprelay' ), esc_html( $text ), 'wprelay-health-queue' );
			$this->fact( __( 'Dead letters', 'wprelay' ), '<a href="' . esc_url( self::url( array( 'tab' => 'dlq' ) ) ) . '">' . esc_html( (string) (int) ( $stats['dead_letters'] ?? 0 ) ) . '</a>', 'wprelay-health-dead' );
			$events = array();
			$counts = (array) ( $stats['events'] ?? array() );
			foreach ( array( 'queued', 'delivered', 'failed', 'discarded' ) as $s ) {
				$events[] = $s . ' ' . (int) ( $counts[ $s ] ?? 0 );
			}
			$this->fact( __( 'Events', 'wprelay' ), esc_html( implode( ', ', $events ) ), 'wprelay-health-events' );
		}
		echo '</tbody></table>';

		if ( ! is_wp_error( $stats ) && ! empty( $stats['targets'] ) ) {
			echo '<h2>' . esc_html__( 'Targets', 'wprelay' ) . '</h2><table class="widefat striped" id="wprelay-targets"><thead><tr><th scope="col">' . esc_html__( 'Target', 'wprelay' ) . '</th><th scope="col">' . esc_html__( 'Circuit breaker', 'wprelay' ) . '</th><th scope="col">' . esc_html__( 'Attempts', 'wprelay' ) . '</th><th scope="col">' . esc_html__( 'Success rate', 'wprelay' ) . '</th></tr></thead><tbody>';
			$targets = (array) $stats['targets'];
			ksort( $targets );
			foreach ( $targets as $name => $t ) {
				$breaker = (string) ( $t['breaker'] ?? '' );
				$extra   = '';
				if ( 'open' === $breaker && ! empty( $t['breaker_retry_at'] ) ) {
					/* translators: %s: time */
					$extra = ' ' . sprintf( esc_html__( 'next probe %s', 'wprelay' ), self::when( (string) $t['breaker_retry_at'] ) );
				}
				$rate = isset( $t['success_rate'] ) ? number_format_i18n( 100 * (float) $t['success_rate'], 1 ) . '%' : '—';
				echo '<tr data-target="' . esc_attr( (string) $name ) . '"><td>' . esc_html( (string) $name ) . '</td><td>' . self::badge( 'closed' === $breaker ? 'ok' : ( 'open' === $breaker ? 'failed' : 'queued' ), $breaker ) . $extra . '</td>'; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- badge() and when() escape.
				/* translators: 1: succeeded attempts, 2: all attempts */
				echo '<td>' . esc_html( sprintf( __( '%1$d of %2$d succeeded', 'wprelay' ), (int) ( $t['succeeded'] ?? 0 ), (int) ( $t['attempts'] ?? 0 ) ) ) . '</td><td>' . esc_html( $rate ) . '</td></tr>';
			}
			echo '</tbody></table><p class="description">' . esc_html__( 'Attempts and success rates count since the sidecar started. An open breaker holds deliveries (without spending attempts) until its next probe.', 'wprelay' ) . '</p>';
		}

		echo '<h2>' . esc_html__( 'wp-config.php constants', 'wprelay' ) . '</h2><table class="widefat striped wprelay-facts" id="wprelay-constants"><tbody>';
		foreach ( $this->config->status() as $name => $set ) {
			$optional = in_array( $name, WPRelay_Config::OPTIONAL, true );
			$value    = $set ? self::badge( 'ok', __( 'set', 'wprelay' ) ) : self::badge( $optional ? 'skipped' : 'failed', $optional ? __( 'not set (optional)', 'wprelay' ) : __( 'not set', 'wprelay' ) );
			$this->fact( $name, $value, '' );
		}
		echo '</tbody></table><p class="description">' . esc_html__( 'Values are never shown. The secrets belong in wp-config.php, not in the database.', 'wprelay' ) . '</p>';

		$counts = $this->outbox->counts();
		echo '<h2>' . esc_html__( 'Outbox', 'wprelay' ) . '</h2><p>';
		/* translators: 1: pending, 2: sent, 3: failed */
		echo esc_html( sprintf( __( '%1$d pending, %2$d sent, %3$d failed.', 'wprelay' ), $counts['pending'], $counts['sent'], $counts['failed'] ) );
		echo ' <a href="' . esc_url( self::url( array( 'tab' => 'outbox' ) ) ) . '">' . esc_html__( 'See the outbox', 'wprelay' ) . '</a></p>';
	}

	/**
	 * Returns how many rows a list page shows.
	 *
	 * @return int
	 */
	private function per_page(): int {
		/**
		 * Filters how many events or dead letters one page of Tools →
		 * Webhook Relay lists.
		 *
		 * @since 0.1.0
		 *
		 * @param int $per_page Default 25; the sidecar allows 1 to 1000.
		 */
		return max( 1, min( 1000, (int) apply_filters( 'wprelay_admin_per_page', self::PER_PAGE ) ) );
	}

	/**
	 * Prints one row of a facts table; $html is already escaped.
	 *
	 * @param string $label Label.
	 * @param string $html  Value (escaped HTML).
	 * @param string $id    Row id, or ''.
	 */
	private function fact( string $label, string $html, string $id ): void {
		echo '<tr' . ( '' === $id ? '' : ' id="' . esc_attr( $id ) . '"' ) . '><th scope="row">' . esc_html( $label ) . '</th><td>' . wp_kses_post( $html ) . '</td></tr>';
	}

	// ---------------------------------------------------------------- helpers

	/**
	 * Returns a GET argument of the page, sanitized ('' when absent).
	 *
	 * @param string $name     Name.
	 * @param string $fallback Value when the argument is absent.
	 * @return string
	 */
	public static function arg( string $name, string $fallback = '' ): string {
		if ( ! isset( $_GET[ $name ] ) ) { // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- read-only view arguments.
			return $fallback;
		}
		return sanitize_text_field( wp_unslash( (string) $_GET[ $name ] ) ); // phpcs:ignore WordPress.Security.NonceVerification.Recommended -- read-only view arguments.
	}

	/**
	 * Returns the page's URL with arguments.
	 *
	 * @param array $args Query arguments ('' values are left out).
	 * @return string
	 */
	public static function url( array $args = array() ): string {
		$args = array_filter(
			$args,
			static function ( $v ) {
				return '' !== $v && null !== $v;
			}
		);
		return add_query_arg( array_merge( array( 'page' => self::SLUG ), array_map( 'rawurlencode', $args ) ), admin_url( 'tools.php' ) );
	}

	/**
	 * Returns a status badge (escaped HTML).
	 *
	 * @param string $status A status (its color).
	 * @param string $label  Text, default the status.
	 * @return string
	 */
	public static function badge( string $status, string $label = '' ): string {
		$kind  = array(
			'delivered'   => 'ok',
			'succeeded'   => 'ok',
			'sent'        => 'ok',
			'ok'          => 'ok',
			'ready'       => 'ok',
			'queued'      => 'wait',
			'pending'     => 'wait',
			'retrying'    => 'wait',
			'in_flight'   => 'wait',
			'failed'      => 'bad',
			'dead'        => 'bad',
			'unreachable' => 'bad',
			'unavailable' => 'bad',
			'discarded'   => 'none',
			'skipped'     => 'none',
		);
		$class = 'wprelay-badge wprelay-badge-' . ( $kind[ $status ] ?? 'none' );
		return '<span class="' . esc_attr( $class ) . '" data-status="' . esc_attr( $status ) . '">' . esc_html( '' === $label ? $status : $label ) . '</span>';
	}

	/**
	 * Returns a time as UTC with its age in a title (escaped HTML), or a
	 * dash for none.
	 *
	 * @param string $iso An RFC 3339 time (or a MySQL datetime with " UTC").
	 * @return string
	 */
	public static function when( string $iso ): string {
		$ts = strtotime( $iso );
		if ( false === $ts || $ts <= 0 ) {
			return '—';
		}
		$age = $ts <= time()
			/* translators: %s: a duration */
			? sprintf( __( '%s ago', 'wprelay' ), human_time_diff( $ts ) )
			/* translators: %s: a duration */
			: sprintf( __( 'in %s', 'wprelay' ), human_time_diff( $ts ) );
		return '<span class="wprelay-time" title="' . esc_attr( $age ) . '">' . esc_html( gmdate( 'Y-m-d H:i:s', $ts ) ) . '</span>';
	}

	/**
	 * Prints a one-button form posting to admin-post.php with a nonce.
	 *
	 * @param string $action  Action name (also the nonce action).
	 * @param string $label   Button label.
	 * @param array  $fields  Hidden fields.
	 * @param string $classes Button classes.
	 */
	public static function button( string $action, string $label, array $fields, string $classes = 'button button-small' ): void {
		echo '<form method="post" action="' . esc_url( admin_url( 'admin-post.php' ) ) . '" class="wprelay-inline">';
		echo '<input type="hidden" name="action" value="' . esc_attr( $action ) . '">';
		foreach ( $fields as $k => $v ) {
			echo '<input type="hidden" name="' . esc_attr( $k ) . '" value="' . esc_attr( (string) $v ) . '">';
		}
		wp_nonce_field( $action );
		echo '<button type="submit" class="' . esc_attr( $classes ) . '">' . esc_html( $label ) . '</button>';
		echo '</form>';
	}
}
