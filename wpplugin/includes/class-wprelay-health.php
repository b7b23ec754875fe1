<?php
/**
 * WPRelay_Health: the checks behind Site Health, `wp wprelay health` and
 * the plugin page's failure notice.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Runs the plugin's health checks. Each check returns an array: id,
 * label (a title, plain text), status (good, recommended or critical),
 * value (short, plain text) and description (what it means and the
 * setting to change, plain text).
 *
 * Site Health (WPRelay_Site_Health) shows each as a test, WP-CLI
 * (`wp wprelay health`) as a row. Other code adds checks with the
 * `wprelay_health_checks` filter: id => callable returning such an array.
 *
 * Answers of the sidecar are fetched once per instance; never a secret is
 * put in a result.
 */
class WPRelay_Health {

	/** Clock skew (seconds) tokens tolerate: the JWT leeway on both sides. */
	const SKEW_MAX = 30;

	/** Age (seconds) of the oldest pending outbox row above which the backlog is reported. */
	const BACKLOG_AGE = 300;

	/** Age (seconds) above which the backlog is critical. */
	const BACKLOG_CRITICAL = 3600;

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
	 * Receipts.
	 *
	 * @var WPRelay_Receipts
	 */
	private $receipts;

	/**
	 * Sidecar admin API.
	 *
	 * @var WPRelay_Sidecar_Client
	 */
	private $client;

	/**
	 * Answers already fetched (name => value).
	 *
	 * @var array
	 */
	private $memo = array();

	/**
	 * Builds the checks.
	 *
	 * @param WPRelay_Config         $config   Settings.
	 * @param WPRelay_Outbox         $outbox   Outbox.
	 * @param WPRelay_Receipts       $receipts Receipts.
	 * @param WPRelay_Sidecar_Client $client   Sidecar admin API.
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Outbox $outbox, WPRelay_Receipts $receipts, WPRelay_Sidecar_Client $client ) {
		$this->config   = $config;
		$this->outbox   = $outbox;
		$this->receipts = $receipts;
		$this->client   = $client;
	}

	/**
	 * Returns the checks: id => callable returning a result.
	 *
	 * @return array<string,callable>
	 */
	public function checks(): array {
		$checks = array(
			'sidecar_reachable'  => array( $this, 'check_sidecar_reachable' ),
			'sidecar_ready'      => array( $this, 'check_sidecar_ready' ),
			'constants'          => array( $this, 'check_constants' ),
			'loopback_allowance' => array( $this, 'check_loopback_allowance' ),
			'clock_skew'         => array( $this, 'check_clock_skew' ),
			'outbox_backlog'     => array( $this, 'check_outbox_backlog' ),
			'outbox_failed'      => array( $this, 'check_outbox_failed' ),
			'received_failed'    => array( $this, 'check_received_failed' ),
			'dead_letters'       => array( $this, 'check_dead_letters' ),
		);
		/**
		 * Filters the health checks shown in Site Health and by
		 * `wp wprelay health`.
		 *
		 * @since 0.2.0
		 *
		 * @param array<string,callable> $checks Check id => callable returning
		 *                                       array( id, label, status, value, description ).
		 * @param WPRelay_Health         $health This object (its receipts(), outbox() and client()).
		 */
		return (array) apply_filters( 'wprelay_health_checks', $checks, $this );
	}

	/**
	 * Runs one check.
	 *
	 * @param string $id Check id.
	 * @return array|null The result, null for an unknown id.
	 */
	public function run( string $id ): ?array {
		$checks = $this->checks();
		if ( ! isset( $checks[ $id ] ) || ! is_callable( $checks[ $id ] ) ) {
			return null;
		}
		$result       = (array) call_user_func( $checks[ $id ] );
		$result['id'] = $id;
		if ( ! in_array( $result['status'] ?? '', array( 'good', 'recommended', 'critical' ), true ) ) {
			$result['status'] = 'recommended';
		}
		return $result + array(
			'label'       => $id,
			'value'       => '',
			'description' => '',
		);
	}

	/**
	 * Runs every check.
	 *
	 * @return array[] Results in check order.
	 */
	public function run_all(): array {
		$out = array();
		foreach ( array_keys( $this->checks() ) as $id ) {
			$out[] = $this->run( (string) $id );
		}
		return $out;
	}

	/**
	 * Returns the outbox.
	 *
	 * @return WPRelay_Outbox
	 */
	public function outbox(): WPRelay_Outbox {
		return $this->outbox;
	}

	/**
	 * Returns the receipts.
	 *
	 * @return WPRelay_Receipts
	 */
	public function receipts(): WPRelay_Receipts {
		return $this->receipts;
	}

	/**
	 * Returns the sidecar admin API client.
	 *
	 * @return WPRelay_Sidecar_Client
	 */
	public function client(): WPRelay_Sidecar_Client {
		return $this->client;
	}

	/**
	 * The sidecar's public listener answers /healthz, reached the way
	 * events are sent.
	 *
	 * @return array
	 */
	public function check_sidecar_reachable(): array {
		$public = $this->memo( 'public', array( $this->client, 'public_health' ) );
		if ( $public['reachable'] ) {
			return $this->result( 'good', __( 'The wprelay sidecar is reachable', 'wprelay' ), 'reachable', __( 'This site reaches the sidecar at WPRELAY_SIDECAR_URL, the way it sends events.', 'wprelay' ) );
		}
		return $this->result(
			'critical',
			__( 'The wprelay sidecar is not reachable', 'wprelay' ),
			'unreachable',
			/* translators: 1: URL, 2: the error */
			sprintf( __( 'This site cannot reach the sidecar at %1$s (%2$s). Events it emits wait in the outbox and are sent within seconds of the sidecar answering again. Start the sidecar (systemctl start wprelay), or correct WPRELAY_SIDECAR_URL in wp-config.php.', 'wprelay' ), $this->config->sidecar_url(), $public['error'] )
		);
	}

	/**
	 * The sidecar's admin API answers /readyz with "ready" and accepts the
	 * admin token.
	 *
	 * @return array
	 */
	public function check_sidecar_ready(): array {
		$ready = $this->memo( 'ready', array( $this->client, 'ready' ) );
		$label = __( 'The wprelay sidecar is ready', 'wprelay' );
		if ( is_wp_error( $ready ) ) {
			if ( 'wprelay_not_configured' === $ready->get_error_code() ) {
				return $this->result( 'recommended', $label, 'not configured', __( 'Set WPRELAY_ADMIN_URL and WPRELAY_ADMIN_TOKEN in wp-config.php to see the sidecar\'s readiness, events and dead letters here.', 'wprelay' ) );
			}
			/* translators: 1: the admin API URL, 2: the error */
			return $this->result( 'critical', __( 'The wprelay sidecar\'s admin API is not reachable', 'wprelay' ), 'unreachable', sprintf( __( 'The admin API at %1$s does not answer (%2$s). Start the sidecar, or correct WPRELAY_ADMIN_URL in wp-config.php.', 'wprelay' ), $this->config->get( 'WPRELAY_ADMIN_URL' ), $ready->get_error_message() ) );
		}
		if ( 'ready' !== ( $ready['status'] ?? '' ) ) {
			/* translators: %s: the sidecar's reason */
			return $this->result( 'critical', __( 'The wprelay sidecar is not ready', 'wprelay' ), 'not ready', sprintf( __( 'The sidecar answers but is not ready: %s. Check its log (journalctl -u wprelay).', 'wprelay' ), (string) ( $ready['reason'] ?? '' ) ) );
		}
		$stats = $this->memo( 'stats', array( $this->client, 'stats' ) );
		if ( is_wp_error( $stats ) && 'wprelay_unauthorized' === $stats->get_error_code() ) {
			return $this->result( 'critical', __( 'The wprelay sidecar refuses the admin token', 'wprelay' ), 'token refused', __( 'WPRELAY_ADMIN_TOKEN in wp-config.php differs from admin.token in the sidecar\'s wprelay.yaml: copy it again.', 'wprelay' ) );
		}
		/* translators: %s: version */
		return $this->result( 'good', $label, 'ready', sprintf( __( 'The sidecar (version %s) is ready and accepts the admin token.', 'wprelay' ), (string) ( $ready['version'] ?? '?' ) ) );
	}

	/**
	 * Every required wp-config.php constant is set.
	 *
	 * @return array
	 */
	public function check_constants(): array {
		$missing = array();
		foreach ( WPRelay_Config::REQUIRED as $name ) {
			if ( '' === $this->config->get( $name ) ) {
				$missing[] = $name;
			}
		}
		if ( empty( $missing ) ) {
			return $this->result( 'good', __( 'Webhook Relay\'s constants are set', 'wprelay' ), 'all set', __( 'Every constant the plugin needs is defined in wp-config.php (values are never shown).', 'wprelay' ) );
		}
		return $this->result(
			'critical',
			__( 'Webhook Relay\'s constants are missing', 'wprelay' ),
			implode( ' ', $missing ),
			/* translators: %s: constant names */
			sprintf( __( 'Define %s in wp-config.php, above "That\'s all, stop editing!". `wprelay init --site-url URL` prints the lines with fresh secrets.', 'wprelay' ), implode( ', ', $missing ) )
		);
	}

	/**
	 * WordPress lets wp_safe_remote_*() reach the sidecar's URLs (loopback
	 * or private hosts and odd ports are refused unless allowed).
	 *
	 * @return array
	 */
	public function check_loopback_allowance(): array {
		$refused = array();
		$urls    = array(
			'WPRELAY_SIDECAR_URL' => $this->config->hook_url(),
			'WPRELAY_ADMIN_URL'   => '' === $this->config->get( 'WPRELAY_ADMIN_URL' ) ? '' : rtrim( $this->config->get( 'WPRELAY_ADMIN_URL' ), '/' ) . '/readyz',
		);
		foreach ( $urls as $name => $url ) {
			if ( '' !== $url && false === wp_http_validate_url( $url ) ) {
				$refused[] = $name;
			}
		}
		$label = __( 'WordPress allows requests to the sidecar', 'wprelay' );
		if ( empty( $refused ) ) {
			return $this->result( 'good', $label, 'allowed', __( 'wp_safe_remote_post() accepts the sidecar\'s host and port: the plugin allows exactly these through http_request_host_is_external and http_allowed_safe_ports.', 'wprelay' ) );
		}
		return $this->result(
			'critical',
			__( 'WordPress refuses requests to the sidecar', 'wprelay' ),
			'refused: ' . implode( ' ', $refused ),
			/* translators: %s: constant names */
			sprintf( __( 'wp_http_validate_url() refuses the URL in %s: its host does not resolve, or another plugin filters http_request_host_is_external or http_allowed_safe_ports after this one. Use a host name that resolves on this server (127.0.0.1 works), and check those filters.', 'wprelay' ), implode( ', ', $refused ) )
		);
	}

	/**
	 * This site's clock and the sidecar's agree within the token leeway.
	 *
	 * @return array
	 */
	public function check_clock_skew(): array {
		$this->memo( 'ready', array( $this->client, 'ready' ) );
		$skew  = $this->client->skew();
		$label = __( 'This site\'s clock agrees with the sidecar\'s', 'wprelay' );
		if ( null === $skew ) {
			return $this->result( 'recommended', $label, 'unknown', __( 'The clock skew could not be measured: the sidecar\'s admin API did not answer. It is measured from the Date header of its answers.', 'wprelay' ) );
		}
		/* translators: %d: seconds */
		$value = sprintf( __( '%d s', 'wprelay' ), $skew );
		if ( abs( $skew ) <= self::SKEW_MAX ) {
			return $this->result( 'good', $label, $value, __( 'The clocks agree within the 30 s that signed tokens tolerate.', 'wprelay' ) );
		}
		/* translators: %d: seconds */
		return $this->result( 'critical', __( 'This site\'s clock is off from the sidecar\'s', 'wprelay' ), $value, sprintf( __( 'The clocks differ by %d s; tokens tolerate 30 s, so requests between them are refused. Synchronize both machines with NTP (timedatectl set-ntp true).', 'wprelay' ), $skew ) );
	}

	/**
	 * Emitted events do not wait long in the outbox.
	 *
	 * @return array
	 */
	public function check_outbox_backlog(): array {
		$counts = $this->outbox->counts();
		$age    = $this->outbox->oldest_pending_age();
		/* translators: 1: pending rows, 2: seconds */
		$value = sprintf( __( '%1$d pending, the oldest emitted %2$d s ago', 'wprelay' ), $counts['pending'], $age );
		if ( 0 === $counts['pending'] || $age <= self::BACKLOG_AGE ) {
			/* translators: %d: pending rows */
			return $this->result( 'good', __( 'The outbox is not backing up', 'wprelay' ), $value, sprintf( __( '%d events wait to be sent; none has waited long.', 'wprelay' ), $counts['pending'] ) );
		}
		return $this->result(
			$age > self::BACKLOG_CRITICAL ? 'critical' : 'recommended',
			__( 'Events are backing up in the outbox', 'wprelay' ),
			$value,
			/* translators: 1: pending rows, 2: a duration */
			sprintf( __( '%1$d events wait to be sent; the oldest was emitted %2$s ago. The sidecar is down or refuses them (see the last error in Tools → Webhook Relay → Outbox), or WP-Cron does not run: with DISABLE_WP_CRON, run `wp cron event run --due-now` from a system cron every minute.', 'wprelay' ), $counts['pending'], human_time_diff( 0, $age ) )
		);
	}

	/**
	 * No outbox row failed for good.
	 *
	 * @return array
	 */
	public function check_outbox_failed(): array {
		$counts = $this->outbox->counts();
		if ( 0 === $counts['failed'] ) {
			return $this->result( 'good', __( 'No emitted event failed for good', 'wprelay' ), '0 failed', __( 'Every event this site emitted was taken by the sidecar or is still being retried.', 'wprelay' ) );
		}
		return $this->result(
			'critical',
			__( 'Emitted events failed for good', 'wprelay' ),
			/* translators: %d: failed rows */
			sprintf( __( '%d failed', 'wprelay' ), $counts['failed'] ),
			/* translators: %d: failed rows */
			sprintf( __( '%d events this site emitted were refused by the sidecar (a 4xx answer) or ran out of attempts; they will not be sent again by themselves. Read their last error in Tools → Webhook Relay → Outbox, fix the cause (often a secret that differs between wp-config.php and wprelay.yaml), then retry them: `wp wprelay outbox retry --failed`.', 'wprelay' ), $counts['failed'] )
		);
	}

	/**
	 * No received event's handlers failed for good; reports those being
	 * retried.
	 *
	 * @return array
	 */
	public function check_received_failed(): array {
		$failed   = (int) ( $this->receipts->counts()['failed'] ?? 0 );
		$retrying = $this->receipts->retrying();
		/* translators: 1: failed events, 2: events being retried */
		$value = sprintf( __( '%1$d failed, %2$d being retried', 'wprelay' ), $failed, $retrying );
		if ( $failed > 0 ) {
			return $this->result(
				'critical',
				__( 'Received events failed', 'wprelay' ),
				$value,
				/* translators: %d: failed events */
				sprintf( __( 'The wprelay_event handlers of %d received events threw or ended their PHP process on every attempt; each attempt was rolled back, so none of them changed the database. Read the last error in Tools → Webhook Relay → Received (or `wp wprelay events list --status=failed`), fix the handler, then replay them there or with `wp wprelay events replay --failed`.', 'wprelay' ), $failed )
			);
		}
		if ( $retrying > 0 ) {
			return $this->result(
				'recommended',
				__( 'Received events are being retried', 'wprelay' ),
				$value,
				/* translators: %d: events being retried */
				sprintf( __( 'The wprelay_event handlers of %d received events threw or ended their PHP process; their writes were rolled back and they will be retried (after 10 s, 1 min, 5 min, 30 min, 2 h). Tools → Webhook Relay → Received shows the last error.', 'wprelay' ), $retrying )
			);
		}
		return $this->result( 'good', __( 'Received events were handled', 'wprelay' ), $value, __( 'Every event delivered to this site was handled or is waiting for its first attempt.', 'wprelay' ) );
	}

	/**
	 * The sidecar has no dead deliveries.
	 *
	 * @return array
	 */
	public function check_dead_letters(): array {
		$stats = $this->memo( 'stats', array( $this->client, 'stats' ) );
		$label = __( 'The sidecar has no dead letters', 'wprelay' );
		if ( is_wp_error( $stats ) ) {
			return $this->result( 'recommended', $label, 'unknown', __( 'Dead letters could not be counted: the sidecar\'s admin API did not answer (see the readiness test).', 'wprelay' ) );
		}
		$dead = (int) ( $stats['dead_letters'] ?? 0 );
		if ( 0 === $dead ) {
			return $this->result( 'good', $label, '0', __( 'Every delivery the sidecar gave up on has been replayed or none failed.', 'wprelay' ) );
		}
		return $this->result(
			'recommended',
			__( 'The sidecar has dead letters', 'wprelay' ),
			(string) $dead,
			/* translators: %d: dead deliveries */
			sprintf( __( '%d deliveries ran out of attempts or were refused. Read their reason in Tools → Webhook Relay → Dead letters, fix the target, then replay them there or with `wp wprelay dlq replay`.', 'wprelay' ), $dead )
		);
	}

	/**
	 * Builds a result.
	 *
	 * @param string $status      good, recommended or critical.
	 * @param string $label       Title.
	 * @param string $value       Short value.
	 * @param string $description What it means and what to do.
	 * @return array
	 */
	private function result( string $status, string $label, string $value, string $description ): array {
		return array(
			'status'      => $status,
			'label'       => $label,
			'value'       => $value,
			'description' => $description,
		);
	}

	/**
	 * Returns a memoized answer.
	 *
	 * @param string   $name  Name.
	 * @param callable $fetch Fetches it.
	 * @return mixed
	 */
	private function memo( string $name, callable $fetch ) {
		if ( ! array_key_exists( $name, $this->memo ) ) {
			$this->memo[ $name ] = call_user_func( $fetch );
		}
		return $this->memo[ $name ];
	}
}
