<?php
/**
 * WPRelay_Sender: posts outbox rows to the sidecar, signed.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Sends outbox rows to {WPRELAY_SIDECAR_URL}/hooks/{WPRELAY_SOURCE} as
 * DESIGN.md "WordPress → sidecar" describes: a fresh HS256 JWT per attempt
 * (iss the site URL, aud "wprelay", iat, exp, jti) and a Standard
 * Webhooks signature whose webhook-id is the row's idempotency key. The
 * body is the row's payload, byte for byte the same on every attempt.
 *
 * 200/202 (any 2xx) → sent. 408, 425, 429 and 5xx → retried from WP-Cron
 * after 1 min, 5 min, 30 min, 2 h, then daily, up to
 * `wprelay_outbox_max_attempts` (10) attempts. Other answers → failed, with
 * the sidecar's error code kept.
 *
 * Catch-up: when the sidecar cannot be reached at all (connection refused,
 * timeout: it is restarting or down), the attempt does not count, and the
 * rows are tried again NETWORK_RETRY seconds later through a single WP-Cron
 * event, for as long as the sidecar stays away (up to MAX_NETWORK_AGE).
 * On a site with traffic, or with a system cron running wp-cron.php every
 * few seconds, events emitted during a restart reach the sidecar within
 * about NETWORK_RETRY seconds of its return instead of minutes.
 */
class WPRelay_Sender {

	/** The recurring WP-Cron hook that sends due rows. */
	const CRON_HOOK = 'wprelay_outbox_flush';

	/** The single WP-Cron event that retries soon after a network error. */
	const RETRY_HOOK = 'wprelay_outbox_retry';

	/** Seconds between tries while the sidecar cannot be reached. */
	const NETWORK_RETRY = 10;

	/** Seconds a row is retried while the sidecar cannot be reached before it fails (the sidecar's 7-day dedupe window). */
	const MAX_NETWORK_AGE = 604800;

	/** Its schedule. */
	const CRON_SCHEDULE = 'wprelay_every_minute';

	/** Seconds to wait before attempt n+1 after attempt n failed (n = 1…); daily after. */
	const BACKOFF = array( 60, 300, 1800, 7200 );

	/** The wait once BACKOFF is used up. */
	const DAILY = 86400;

	/** Default most attempts of one row (the last daily one lands within the sidecar's 7-day dedupe window). */
	const MAX_ATTEMPTS = 10;

	/** Seconds one attempt may take. */
	const TIMEOUT = 3;

	/** Token lifetime in seconds (DESIGN.md: at most 300). */
	const TOKEN_TTL = 120;

	/** Rows sent per cron run. */
	const BATCH = 25;

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Token and signature code.
	 *
	 * @var WPRelay_Crypto
	 */
	private $crypto;

	/**
	 * The outbox.
	 *
	 * @var WPRelay_Outbox
	 */
	private $outbox;

	/**
	 * Builds the sender.
	 *
	 * @param WPRelay_Config $config Settings.
	 * @param WPRelay_Crypto $crypto Token and signature code.
	 * @param WPRelay_Outbox $outbox The outbox.
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Crypto $crypto, WPRelay_Outbox $outbox ) {
		$this->config = $config;
		$this->crypto = $crypto;
		$this->outbox = $outbox;
	}

	/**
	 * Hooks the cron schedule and handler in.
	 */
	public function register_hooks(): void {
		add_filter( 'cron_schedules', array( $this, 'cron_schedules' ) ); // phpcs:ignore WordPress.WP.CronInterval.CronSchedulesInterval -- a one-minute outbox retry; each run is a short, bounded batch.
		add_action( self::CRON_HOOK, array( $this, 'flush' ) );
		add_action( self::RETRY_HOOK, array( $this, 'flush' ) );
		add_action( 'init', array( $this, 'ensure_scheduled' ) );
	}

	/**
	 * Adds the one-minute schedule.
	 *
	 * @param array $schedules Schedules.
	 * @return array
	 */
	public function cron_schedules( $schedules ) {
		$schedules[ self::CRON_SCHEDULE ] = array(
			'interval' => 60,
			'display'  => __( 'Every minute (Webhook Relay outbox)', 'wprelay' ),
		);
		return $schedules;
	}

	/**
	 * Schedules the recurring flush when it is not (activation, or a cron
	 * table that lost it).
	 */
	public function ensure_scheduled(): void {
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time() + 60, self::CRON_SCHEDULE, self::CRON_HOOK );
		}
	}

	/**
	 * Sends the due rows (the WP-Cron job). Stops at the first network error:
	 * the sidecar is down, and the other rows would fail the same way.
	 */
	public function flush(): void {
		/**
		 * Fires at the start of each outbox run (every minute from WP-Cron).
		 *
		 * @since 0.1.0
		 */
		do_action( 'wprelay_outbox_flush_start' );
		$out = $this->send( $this->outbox->due( self::BATCH ) );
		if ( in_array( 'sent', $out, true ) ) {
			// The sidecar answers again: rows waiting only because it could
			// not be reached go now, without waiting for their next try.
			$this->send( $this->outbox->unreachable( self::BATCH ), true );
		}
		$this->schedule_retry();
	}

	/**
	 * Schedules the retry event for the earliest pending row when it is due
	 * before the next recurring run and no retry event is scheduled.
	 */
	private function schedule_retry(): void {
		$next = $this->outbox->next_due();
		if ( null === $next || wp_next_scheduled( self::RETRY_HOOK ) ) {
			return;
		}
		$regular = wp_next_scheduled( self::CRON_HOOK );
		if ( false === $regular || $next < $regular ) {
			wp_schedule_single_event( max( time() + 1, $next ), self::RETRY_HOOK );
		}
	}

	/**
	 * Claims and sends rows by id; rows not due or claimed elsewhere are
	 * skipped.
	 *
	 * @param int[] $ids Row ids.
	 * @param bool  $now Whether rows not yet due are sent too.
	 * @return array<int,string> Row id => outcome (sent, retry, failed).
	 */
	public function send( array $ids, bool $now = false ): array {
		$out = array();
		foreach ( $ids as $id ) {
			$row = $this->outbox->claim( (int) $id, $now );
			if ( null === $row ) {
				continue;
			}
			$out[ (int) $id ] = $this->attempt( $row );
			if ( 'network' === $out[ (int) $id ] ) {
				$out[ (int) $id ] = 'retry';
				break;
			}
		}
		return $out;
	}

	/**
	 * Builds the signed request for a row.
	 *
	 * @param array $row Outbox row.
	 * @param int   $now Unix time.
	 * @return array{url:string,args:array}
	 * @throws WPRelay_Crypto_Exception When the signing secret is malformed.
	 */
	public function request( array $row, int $now ): array {
		$token = $this->crypto->sign_jwt_hs256(
			array(
				'iss' => $this->config->site_url(),
				'aud' => 'wprelay',
				'iat' => $now,
				'exp' => $now + self::TOKEN_TTL,
				'jti' => $this->crypto->uuid4(),
			),
			$this->config->get( 'WPRELAY_SITE_JWT_SECRET' )
		);
		$key   = $row['idempotency_key'];
		return array(
			'url'  => $this->config->hook_url(),
			'args' => array(
				'method'      => 'POST',
				'timeout'     => self::TIMEOUT,
				'redirection' => 0,
				'blocking'    => true,
				'headers'     => array(
					'Content-Type'      => 'application/json',
					'Authorization'     => 'Bearer ' . $token,
					'webhook-id'        => $key,
					'webhook-timestamp' => (string) $now,
					'webhook-signature' => $this->crypto->sign_webhook( $this->config->get( 'WPRELAY_SITE_SIGNING_SECRET' ), $key, $now, $row['payload'] ),
				),
				'body'        => $row['payload'],
				'user-agent'  => 'wprelay-plugin/' . ( defined( 'WPRELAY_VERSION' ) ? WPRELAY_VERSION : 'dev' ) . '; ' . $this->config->site_origin(),
			),
		);
	}

	/**
	 * Sends one claimed row and records the outcome.
	 *
	 * @param array $row Outbox row (attempts already counts this attempt).
	 * @return string sent, retry, network (a retry because the sidecar was unreachable) or failed.
	 */
	private function attempt( array $row ): string {
		$id = (int) $row['id'];
		if ( '' === $this->config->hook_url() || '' === $this->config->get( 'WPRELAY_SITE_JWT_SECRET' ) || '' === $this->config->get( 'WPRELAY_SITE_SIGNING_SECRET' ) ) {
			return $this->retry( $row, 'not configured: set WPRELAY_SIDECAR_URL, WPRELAY_SOURCE, WPRELAY_SITE_JWT_SECRET and WPRELAY_SITE_SIGNING_SECRET', 0, 'network' );
		}
		try {
			$req = $this->request( $row, time() );
		} catch ( WPRelay_Crypto_Exception $e ) {
			return $this->retry( $row, 'WPRELAY_SITE_SIGNING_SECRET: ' . $e->getMessage(), 0, 'network' );
		}
		$res = wp_safe_remote_post( $req['url'], $req['args'] );
		if ( is_wp_error( $res ) ) {
			return $this->retry_unreachable( $row, 'network: ' . $res->get_error_message() );
		}
		$code = (int) wp_remote_retrieve_response_code( $res );
		if ( $code >= 200 && $code < 300 ) {
			$this->outbox->mark_sent( $id );
			return 'sent';
		}
		$reason = 'HTTP ' . $code . $this->sidecar_error( (string) wp_remote_retrieve_body( $res ) );
		if ( in_array( $code, array( 408, 425, 429 ), true ) || $code >= 500 ) {
			$after = (int) wp_remote_retrieve_header( $res, 'retry-after' );
			return $this->retry( $row, $reason, min( max( 0, $after ), self::DAILY ), 'retry' );
		}
		$this->outbox->mark_failed( $id, $reason );
		$this->log( $row, 'failed: ' . $reason );
		return 'failed';
	}

	/**
	 * Schedules a row again NETWORK_RETRY seconds from now after the sidecar
	 * could not be reached, without counting the attempt, and makes sure a
	 * WP-Cron event comes back for it; fails the row once it is older than
	 * MAX_NETWORK_AGE.
	 *
	 * @param array  $row    Outbox row.
	 * @param string $reason Why it could not be sent.
	 * @return string network, or failed.
	 */
	private function retry_unreachable( array $row, string $reason ): string {
		$age = time() - (int) strtotime( $row['created_at'] . ' UTC' );
		if ( $age > self::MAX_NETWORK_AGE ) {
			$this->outbox->mark_failed( (int) $row['id'], sprintf( 'gave up after %d days: %s', (int) ( $age / DAY_IN_SECONDS ), $reason ) );
			$this->log( $row, 'gave up: ' . $reason );
			return 'failed';
		}
		$at = time() + self::NETWORK_RETRY;
		$this->outbox->retry_at( (int) $row['id'], $at, $reason, true );
		$this->schedule_retry();
		$this->log( $row, 'will retry in ' . self::NETWORK_RETRY . ' s: ' . $reason );
		return 'network';
	}

	/**
	 * Schedules the next attempt of a row, or fails it when it had its last.
	 *
	 * @param array  $row     Outbox row.
	 * @param string $reason  Why this attempt failed.
	 * @param int    $at_least Seconds to wait at least (Retry-After).
	 * @param string $outcome What to return when retried.
	 * @return string
	 */
	private function retry( array $row, string $reason, int $at_least, string $outcome ): string {
		$attempts = (int) $row['attempts'];
		/**
		 * Filters how many times one outbox row is attempted before it is
		 * marked failed.
		 *
		 * @since 0.1.0
		 *
		 * @param int $max Default 10: 1 min, 5 min, 30 min, 2 h, then daily.
		 */
		$max = (int) apply_filters( 'wprelay_outbox_max_attempts', self::MAX_ATTEMPTS );
		if ( $attempts >= $max ) {
			$this->outbox->mark_failed( (int) $row['id'], sprintf( 'gave up after %d attempts: %s', $attempts, $reason ) );
			$this->log( $row, 'gave up: ' . $reason );
			return 'failed';
		}
		$this->outbox->retry_at( (int) $row['id'], time() + max( $at_least, self::backoff( $attempts ) ), $reason );
		$this->log( $row, 'will retry: ' . $reason );
		return $outcome;
	}

	/**
	 * Returns the wait after the $attempts-th failed attempt.
	 *
	 * @param int $attempts Attempts made so far (1 or more).
	 * @return int Seconds.
	 */
	public static function backoff( int $attempts ): int {
		return self::BACKOFF[ $attempts - 1 ] ?? self::DAILY;
	}

	/**
	 * Returns ": code (message)" from the sidecar's JSON error, or ''.
	 *
	 * @param string $body Response body.
	 * @return string
	 */
	private function sidecar_error( string $body ): string {
		$err = json_decode( $body, true );
		if ( ! is_array( $err ) || ! isset( $err['error'] ) || ! is_string( $err['error'] ) ) {
			return '';
		}
		$msg = isset( $err['message'] ) && is_string( $err['message'] ) ? ' (' . substr( $err['message'], 0, 200 ) . ')' : '';
		return ': ' . substr( $err['error'], 0, 64 ) . $msg;
	}

	/**
	 * Logs an outcome without secrets or payload.
	 *
	 * @param array  $row Outbox row.
	 * @param string $msg What happened.
	 */
	private function log( array $row, string $msg ): void {
		error_log( sprintf( 'wprelay: outbox row %d (%s, %s) attempt %d %s', (int) $row['id'], $row['event_type'], $row['idempotency_key'], (int) $row['attempts'], $msg ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- the outbox log operators read (ids and reasons only, no secret or payload).
	}
}
