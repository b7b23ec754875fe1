<?php
/**
 * WPRelay_CLI: the `wp wprelay` commands.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Inspects and operates Webhook Relay from WP-CLI: the sidecar's health,
 * the events WordPress received (receipts) or the sidecar holds, dead
 * letters, and the outbox of events this site emitted.
 *
 * Exit codes: 0 when the command did what it was asked (for `status` and
 * `health`: every check is good); 1 on an error, or when a check is
 * critical (the sidecar is down, a constant is missing, a row failed for
 * good); 2 when `status` or `health` found only recommendations.
 */
class WPRelay_CLI {

	/** Exit code when only recommendations were found. */
	const EXIT_RECOMMENDED = 2;

	/**
	 * The checks.
	 *
	 * @var WPRelay_Health
	 */
	private $health;

	/**
	 * The sender (outbox retry).
	 *
	 * @var WPRelay_Sender
	 */
	private $sender;

	/**
	 * The dispatcher (replay of failed receipts), when given.
	 *
	 * @var WPRelay_Dispatcher|null
	 */
	private $dispatcher;

	/**
	 * Builds the commands.
	 *
	 * @param WPRelay_Health          $health     The checks (and the outbox, receipts and sidecar client).
	 * @param WPRelay_Sender          $sender     The sender.
	 * @param WPRelay_Dispatcher|null $dispatcher The dispatcher.
	 */
	public function __construct( WPRelay_Health $health, WPRelay_Sender $sender, ?WPRelay_Dispatcher $dispatcher = null ) {
		$this->health     = $health;
		$this->sender     = $sender;
		$this->dispatcher = $dispatcher;
	}

	/**
	 * Registers the commands with WP-CLI.
	 */
	public function register(): void {
		WP_CLI::add_command( 'wprelay', 'WPRelay_CLI_Namespace' );
		foreach ( array( 'events', 'dlq', 'outbox' ) as $group ) {
			WP_CLI::add_command( 'wprelay ' . $group, 'WPRelay_CLI_Namespace' );
		}
		$commands = array(
			'wprelay status'        => 'status',
			'wprelay health'        => 'health',
			'wprelay events list'   => 'events_list',
			'wprelay events show'   => 'events_show',
			'wprelay events replay' => 'events_replay',
			'wprelay dlq list'      => 'dlq_list',
			'wprelay dlq replay'    => 'dlq_replay',
			'wprelay outbox list'   => 'outbox_list',
			'wprelay outbox retry'  => 'outbox_retry',
			'wprelay outbox purge'  => 'outbox_purge',
		);
		foreach ( $commands as $name => $method ) {
			WP_CLI::add_command( $name, array( $this, $method ) );
		}
	}

	/**
	 * Shows whether the sidecar is reachable and ready, the constants, the clock skew and the outbox counts.
	 *
	 * Exits 0 when all is well, 1 when something is critical (the sidecar is
	 * down, a constant is missing), 2 when there are only recommendations.
	 *
	 * ## OPTIONS
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay status
	 *     wp wprelay status --format=json
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function status( $args, $assoc_args ): void {
		$rows  = array();
		$worst = array();
		foreach ( array( 'sidecar_reachable', 'sidecar_ready', 'constants', 'loopback_allowance', 'clock_skew', 'dead_letters' ) as $id ) {
			$r       = $this->health->run( $id );
			$worst[] = $r['status'];
			$rows[]  = array(
				'check'  => $id,
				'status' => $r['status'],
				'value'  => $r['value'],
			);
		}
		foreach ( $this->health->outbox()->counts() as $state => $n ) {
			$status  = 'failed' === $state && $n > 0 ? 'critical' : 'good';
			$worst[] = $status;
			$rows[]  = array(
				'check'  => 'outbox_' . $state,
				'status' => $status,
				'value'  => (string) $n,
			);
		}
		WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'check', 'status', 'value' ) );
		$this->exit_for( $worst );
	}

	/**
	 * Runs every health check (the Site Health tests) and says what to change.
	 *
	 * Exits 0 when every check is good, 1 when one is critical, 2 when
	 * there are only recommendations.
	 *
	 * ## OPTIONS
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay health
	 *     wp wprelay health --format=yaml
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function health( $args, $assoc_args ): void {
		$rows = $this->health->run_all();
		WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'id', 'status', 'value', 'label', 'description' ) );
		$this->exit_for( array_column( $rows, 'status' ) );
	}

	/**
	 * Lists the events this site received (its receipts), or with --remote the sidecar's events.
	 *
	 * ## OPTIONS
	 *
	 * [--status=<status>]
	 * : Only this status. Receipts: stored, dispatching, done, failed, applied. Sidecar: queued, delivered, failed, discarded.
	 *
	 * [--type=<type>]
	 * : Only this event type.
	 *
	 * [--limit=<n>]
	 * : Most rows.
	 * ---
	 * default: 20
	 * ---
	 *
	 * [--remote]
	 * : List the sidecar's events (its admin API) instead of this site's receipts.
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay events list --status=failed
	 *     wp wprelay events list --remote --type=invoice.paid --format=json
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function events_list( $args, $assoc_args ): void {
		$limit  = max( 1, (int) ( $assoc_args['limit'] ?? 20 ) );
		$status = (string) ( $assoc_args['status'] ?? '' );
		$type   = (string) ( $assoc_args['type'] ?? '' );
		if ( WP_CLI\Utils\get_flag_value( $assoc_args, 'remote', false ) ) {
			$page = $this->health->client()->events(
				array(
					'status' => $status,
					'type'   => $type,
					'limit'  => $limit,
				)
			);
			$this->fail_on( $page );
			$rows = array();
			foreach ( (array) ( $page['events'] ?? array() ) as $e ) {
				$rows[] = array(
					'id'          => (string) ( $e['id'] ?? '' ),
					'source'      => (string) ( $e['source'] ?? '' ),
					'type'        => (string) ( $e['type'] ?? '' ),
					'status'      => (string) ( $e['status'] ?? '' ),
					'received_at' => (string) ( $e['received_at'] ?? '' ),
					'deliveries'  => count( (array) ( $e['deliveries'] ?? array() ) ),
				);
			}
			WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'id', 'source', 'type', 'status', 'received_at', 'deliveries' ) );
			return;
		}
		$rows = $this->health->receipts()->recent( $limit, $status, $type );
		WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'id', 'event_id', 'event_type', 'route', 'status', 'attempts', 'next_at', 'received_at', 'result_ref', 'last_error' ) );
	}

	/**
	 * Shows one event: this site's receipt of it and, when the sidecar answers, its deliveries.
	 *
	 * Exits 1 when neither this site nor the sidecar knows the event.
	 *
	 * ## OPTIONS
	 *
	 * <id>
	 * : The event id.
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay events show 01j9zk3m8e4v6c2q7n0a5b1d3f --format=json
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function events_show( $args, $assoc_args ): void {
		$id       = (string) $args[0];
		$receipts = $this->health->receipts()->by_event( $id );
		$remote   = $this->health->client()->event( $id );
		if ( empty( $receipts ) && is_wp_error( $remote ) ) {
			/* translators: 1: event id, 2: the sidecar's error */
			WP_CLI::error( sprintf( __( 'No event %1$s: this site has no receipt of it, and the sidecar says: %2$s', 'wprelay' ), $id, $remote->get_error_message() ) );
		}
		$item = array(
			'id'         => $id,
			'type'       => '',
			'receipts'   => array(),
			'status'     => is_wp_error( $remote ) ? '' : (string) ( $remote['status'] ?? '' ),
			'deliveries' => array(),
			'event'      => null,
		);
		foreach ( $receipts as $r ) {
			$item['type']       = (string) $r['event_type'];
			$item['event']      = json_decode( (string) $r['event'], true );
			$item['receipts'][] = array(
				'route'       => $r['route'],
				'status'      => $r['status'],
				'received_at' => $r['received_at'],
				'result_ref'  => $r['result_ref'],
				'last_error'  => (string) $r['last_error'],
			);
		}
		if ( ! is_wp_error( $remote ) ) {
			$item['type'] = '' === $item['type'] ? (string) ( $remote['type'] ?? '' ) : $item['type'];
			foreach ( (array) ( $remote['deliveries'] ?? array() ) as $d ) {
				$item['deliveries'][] = array(
					'target'      => (string) ( $d['target'] ?? '' ),
					'status'      => (string) ( $d['status'] ?? '' ),
					'attempts'    => (int) ( $d['attempts'] ?? 0 ),
					'last_status' => (int) ( $d['last_status'] ?? 0 ),
					'last_error'  => (string) ( $d['last_error'] ?? '' ),
				);
			}
		}
		$format = $this->format( $assoc_args );
		if ( in_array( $format, array( 'table', 'csv' ), true ) ) {
			foreach ( array( 'receipts', 'deliveries', 'event' ) as $k ) {
				$item[ $k ] = wp_json_encode( $item[ $k ] );
			}
		}
		$formatter = new WP_CLI\Formatter( $assoc_args, array_keys( $item ) );
		$formatter->display_item( $item );
	}

	/**
	 * Runs a failed event's handlers again, or asks the sidecar to deliver an event again.
	 *
	 * When this site has a failed receipt of the event (its wprelay_event
	 * handlers threw or died on every attempt, each attempt rolled back),
	 * the receipt is due again with a fresh set of attempts, and runs at the
	 * next dispatch job. Otherwise the sidecar delivers the event again,
	 * with the same Idempotency-Key: receivers that have it answer
	 * "duplicate".
	 *
	 * ## OPTIONS
	 *
	 * [<id>]
	 * : The event id.
	 *
	 * [--target=<target>]
	 * : Only the sidecar's delivery to this target.
	 *
	 * [--failed]
	 * : Every failed receipt of this site (no id).
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay events replay --failed
	 *     wp wprelay events replay 01j9zk3m8e4v6c2q7n0a5b1d3f --target=crm
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function events_replay( $args, $assoc_args ): void {
		$all = (bool) WP_CLI\Utils\get_flag_value( $assoc_args, 'failed', false );
		$id  = (string) ( $args[0] ?? '' );
		if ( ( '' !== $id ) === $all ) {
			WP_CLI::error( __( 'Give an event id or --failed (not both).', 'wprelay' ) );
		}
		$local = null === $this->dispatcher || isset( $assoc_args['target'] ) ? array() : $this->health->receipts()->failed_ids( $id, 1000 );
		if ( $all || ! empty( $local ) ) {
			$n = 0;
			foreach ( $local as $receipt ) {
				$n += $this->dispatcher->replay( $receipt ) ? 1 : 0;
			}
			/* translators: %d: receipts */
			WP_CLI::success( sprintf( __( '%d failed receipts are due again: their handlers run at the next dispatch job.', 'wprelay' ), $n ) );
			return;
		}
		$res = $this->health->client()->replay( $id, (string) ( $assoc_args['target'] ?? '' ) );
		$this->fail_on( $res );
		/* translators: %d: deliveries */
		WP_CLI::success( sprintf( __( '%d deliveries are due again.', 'wprelay' ), (int) ( $res['replayed'] ?? 0 ) ) );
	}

	/**
	 * Lists the sidecar's dead letters: deliveries that ran out of attempts or were refused.
	 *
	 * ## OPTIONS
	 *
	 * [--source=<source>]
	 * : Only events of this source.
	 *
	 * [--target=<target>]
	 * : Only deliveries to this target.
	 *
	 * [--limit=<n>]
	 * : Most rows.
	 * ---
	 * default: 20
	 * ---
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay dlq list --target=crm
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function dlq_list( $args, $assoc_args ): void {
		$page = $this->health->client()->dead_letters(
			array(
				'source' => (string) ( $assoc_args['source'] ?? '' ),
				'target' => (string) ( $assoc_args['target'] ?? '' ),
				'limit'  => max( 1, (int) ( $assoc_args['limit'] ?? 20 ) ),
			)
		);
		$this->fail_on( $page );
		$rows = array();
		foreach ( (array) ( $page['deliveries'] ?? array() ) as $d ) {
			$rows[] = array(
				'event_id' => (string) ( $d['event_id'] ?? '' ),
				'target'   => (string) ( $d['target'] ?? '' ),
				'attempts' => (int) ( $d['attempts'] ?? 0 ),
				'reason'   => (string) ( $d['reason'] ?? '' ),
				'dead_at'  => (string) ( $d['dead_at'] ?? '' ),
			);
		}
		WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'event_id', 'target', 'attempts', 'reason', 'dead_at' ) );
	}

	/**
	 * Replays the sidecar's dead letters matching a filter (all without one).
	 *
	 * ## OPTIONS
	 *
	 * [--source=<source>]
	 * : Only events of this source.
	 *
	 * [--target=<target>]
	 * : Only deliveries to this target.
	 *
	 * [--since=<time>]
	 * : Only deliveries that died at or after this RFC 3339 time.
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay dlq replay --target=crm
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function dlq_replay( $args, $assoc_args ): void {
		$res = $this->health->client()->replay_dlq(
			array(
				'source' => (string) ( $assoc_args['source'] ?? '' ),
				'target' => (string) ( $assoc_args['target'] ?? '' ),
				'since'  => (string) ( $assoc_args['since'] ?? '' ),
			)
		);
		$this->fail_on( $res );
		$n = (int) ( $res['replayed'] ?? 0 );
		/* translators: %d: number of deliveries */
		WP_CLI::success( sprintf( _n( '%d dead delivery replayed.', '%d dead deliveries replayed.', $n, 'wprelay' ), $n ) );
	}

	/**
	 * Lists the outbox: events this site emitted and whether the sidecar took them.
	 *
	 * ## OPTIONS
	 *
	 * [--state=<state>]
	 * : Only this state.
	 * ---
	 * options:
	 *   - pending
	 *   - sent
	 *   - failed
	 * ---
	 *
	 * [--limit=<n>]
	 * : Most rows, newest first.
	 * ---
	 * default: 20
	 * ---
	 *
	 * [--format=<format>]
	 * : Output format.
	 * ---
	 * default: table
	 * options:
	 *   - table
	 *   - json
	 *   - csv
	 *   - yaml
	 * ---
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay outbox list --state=failed --format=csv
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function outbox_list( $args, $assoc_args ): void {
		$rows = $this->health->outbox()->recent( max( 1, (int) ( $assoc_args['limit'] ?? 20 ) ), (string) ( $assoc_args['state'] ?? '' ) );
		WP_CLI\Utils\format_items( $this->format( $assoc_args ), $rows, array( 'id', 'idempotency_key', 'event_type', 'object_ref', 'state', 'attempts', 'next_at', 'created_at', 'sent_at', 'last_error' ) );
	}

	/**
	 * Sends outbox rows now: failed rows get a fresh attempt budget, pending rows stop waiting.
	 *
	 * Exits 1 when a row could not be sent.
	 *
	 * ## OPTIONS
	 *
	 * [<id>...]
	 * : Row ids.
	 *
	 * [--failed]
	 * : Every failed row.
	 *
	 * [--pending]
	 * : Every pending row.
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay outbox retry --failed
	 *     wp wprelay outbox retry 12 13
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function outbox_retry( $args, $assoc_args ): void {
		$ids      = array_map( 'intval', $args );
		$by_state = false;
		foreach ( array( 'failed', 'pending' ) as $state ) {
			if ( WP_CLI\Utils\get_flag_value( $assoc_args, $state, false ) ) {
				$by_state = true;
				$ids      = array_merge( $ids, $this->health->outbox()->ids( $state, 1000 ) );
			}
		}
		if ( empty( $ids ) && ! $by_state ) {
			WP_CLI::error( __( 'Name row ids, or --failed or --pending.', 'wprelay' ) );
		}
		if ( empty( $ids ) ) {
			WP_CLI::success( __( 'No rows to retry.', 'wprelay' ) );
			return;
		}
		$bad = 0;
		foreach ( array_unique( $ids ) as $id ) {
			$outcome = $this->health->outbox()->due_now( $id ) ? ( $this->sender->send( array( $id ) )[ $id ] ?? 'busy' ) : 'not waiting';
			$row     = $this->health->outbox()->get( $id );
			if ( 'sent' !== $outcome ) {
				++$bad;
				/* translators: 1: row id, 2: outcome, 3: last error */
				WP_CLI::warning( sprintf( __( 'Row %1$d: %2$s %3$s', 'wprelay' ), $id, $outcome, null === $row ? '' : (string) $row['last_error'] ) );
			} else {
				/* translators: %d: row id */
				WP_CLI::log( sprintf( __( 'Row %d: sent', 'wprelay' ), $id ) );
			}
		}
		if ( $bad > 0 ) {
			/* translators: 1: rows not sent, 2: rows */
			WP_CLI::error( sprintf( __( '%1$d of %2$d rows were not sent.', 'wprelay' ), $bad, count( array_unique( $ids ) ) ) );
		}
		WP_CLI::success( __( 'Every row was sent.', 'wprelay' ) );
	}

	/**
	 * Deletes outbox rows in a state, older than some days (the daily retention job does this for sent rows).
	 *
	 * ## OPTIONS
	 *
	 * [--state=<state>]
	 * : Which rows.
	 * ---
	 * default: sent
	 * options:
	 *   - sent
	 *   - failed
	 * ---
	 *
	 * [--older-than=<days>]
	 * : Only rows older than this many days (sent rows: since sent; failed: since emitted).
	 * ---
	 * default: 0
	 * ---
	 *
	 * [--yes]
	 * : Do not ask for confirmation.
	 *
	 * ## EXAMPLES
	 *
	 *     wp wprelay outbox purge --state=failed --older-than=30 --yes
	 *
	 * @param array $args       Positional arguments.
	 * @param array $assoc_args Options.
	 */
	public function outbox_purge( $args, $assoc_args ): void {
		$state = (string) ( $assoc_args['state'] ?? 'sent' );
		$days  = max( 0, (int) ( $assoc_args['older-than'] ?? 0 ) );
		/* translators: 1: state, 2: days */
		WP_CLI::confirm( sprintf( __( 'Delete the %1$s outbox rows older than %2$d days?', 'wprelay' ), $state, $days ), $assoc_args );
		$before = time() - $days * DAY_IN_SECONDS + ( 0 === $days ? 1 : 0 );
		$total  = 0;
		do {
			$n      = $this->health->outbox()->purge( $state, $before, 500 );
			$total += $n;
		} while ( 500 === $n );
		/* translators: 1: rows, 2: state */
		WP_CLI::success( sprintf( __( 'Deleted %1$d %2$s rows.', 'wprelay' ), $total, $state ) );
	}

	/**
	 * Returns the --format option.
	 *
	 * @param array $assoc_args Options.
	 * @return string
	 */
	private function format( array $assoc_args ): string {
		return (string) ( $assoc_args['format'] ?? 'table' );
	}

	/**
	 * Stops with the error's message when $res is a WP_Error.
	 *
	 * @param mixed $res A client answer.
	 */
	private function fail_on( $res ): void {
		if ( is_wp_error( $res ) ) {
			/* translators: 1: error code, 2: message */
			WP_CLI::error( sprintf( __( 'The sidecar\'s admin API: %1$s: %2$s', 'wprelay' ), $res->get_error_code(), $res->get_error_message() ) );
		}
	}

	/**
	 * Exits 1 when a status is critical, 2 when one is recommended.
	 *
	 * @param string[] $statuses Check statuses.
	 */
	private function exit_for( array $statuses ): void {
		if ( in_array( 'critical', $statuses, true ) ) {
			WP_CLI::halt( 1 );
		}
		if ( in_array( 'recommended', $statuses, true ) ) {
			WP_CLI::halt( self::EXIT_RECOMMENDED );
		}
	}
}
