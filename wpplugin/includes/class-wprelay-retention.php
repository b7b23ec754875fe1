<?php
/**
 * WPRelay_Retention: the daily job that prunes old rows.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Deletes, once a day from WP-Cron and in batches, what the plugin no
 * longer needs:
 *
 * - sent outbox rows 7 days after they were sent (the sidecar has them);
 * - failed outbox rows 30 days after they were emitted;
 * - receipts 30 days after they arrived, once dispatched or applied (the
 *   sidecar gives up redelivering long before: max_age defaults to 24 h);
 * - wprelay_result posts 30 days after they were stored.
 *
 * The `wprelay_retention_days` filter changes these (0 keeps forever).
 * Each run deletes at most MAX_BATCHES batches per kind and schedules
 * itself again in a minute when more is left.
 */
class WPRelay_Retention {

	/** The daily WP-Cron hook. */
	const CRON_HOOK = 'wprelay_retention';

	/** Default days to keep, by kind. */
	const DEFAULT_DAYS = array(
		'outbox_sent'   => 7,
		'outbox_failed' => 30,
		'receipts'      => 30,
		'results'       => 30,
	);

	/** Rows per DELETE. */
	const BATCH = 500;

	/** Batches per kind and run. */
	const MAX_BATCHES = 20;

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
	 * Builds the job.
	 *
	 * @param WPRelay_Outbox   $outbox   Outbox.
	 * @param WPRelay_Receipts $receipts Receipts.
	 */
	public function __construct( WPRelay_Outbox $outbox, WPRelay_Receipts $receipts ) {
		$this->outbox   = $outbox;
		$this->receipts = $receipts;
	}

	/**
	 * Hooks the job in and keeps it scheduled.
	 */
	public function register_hooks(): void {
		add_action( self::CRON_HOOK, array( $this, 'run' ) );
		add_action( 'init', array( $this, 'ensure_scheduled' ) );
	}

	/**
	 * Schedules the daily run when it is not.
	 */
	public function ensure_scheduled(): void {
		if ( ! wp_next_scheduled( self::CRON_HOOK ) ) {
			wp_schedule_event( time() + HOUR_IN_SECONDS, 'daily', self::CRON_HOOK );
		}
	}

	/**
	 * Returns the days to keep each kind.
	 *
	 * @return array<string,int>
	 */
	public function days(): array {
		/**
		 * Filters how long Webhook Relay keeps its rows, in days (0: forever).
		 *
		 * @since 0.2.0
		 *
		 * @param array<string,int> $days outbox_sent (default 7), outbox_failed (30),
		 *                                receipts (30), results (30).
		 */
		$days = (array) apply_filters( 'wprelay_retention_days', self::DEFAULT_DAYS );
		$out  = array();
		foreach ( self::DEFAULT_DAYS as $kind => $default ) {
			$out[ $kind ] = max( 0, (int) ( $days[ $kind ] ?? $default ) );
		}
		return $out;
	}

	/**
	 * Prunes every kind (the cron job).
	 *
	 * @return array<string,int> Rows deleted by kind.
	 */
	public function run(): array {
		/**
		 * Filters the rows deleted per query by the retention job.
		 *
		 * @since 0.2.0
		 *
		 * @param int $batch Default 500.
		 */
		$batch   = max( 1, (int) apply_filters( 'wprelay_retention_batch', self::BATCH ) );
		$days    = $this->days();
		$deleted = array_fill_keys( array_keys( self::DEFAULT_DAYS ), 0 );
		$more    = false;
		$kinds   = array(
			'outbox_sent'   => function ( int $before ) use ( $batch ) {
				return $this->outbox->purge( 'sent', $before, $batch );
			},
			'outbox_failed' => function ( int $before ) use ( $batch ) {
				return $this->outbox->purge( 'failed', $before, $batch );
			},
			'receipts'      => function ( int $before ) use ( $batch ) {
				return $this->receipts->purge( $before, $batch, array( 'done', 'failed', 'applied' ) );
			},
			'results'       => function ( int $before ) use ( $batch ) {
				return $this->purge_results( $before, $batch );
			},
		);
		foreach ( $kinds as $kind => $purge ) {
			if ( 0 === $days[ $kind ] ) {
				continue;
			}
			$before = time() - $days[ $kind ] * DAY_IN_SECONDS;
			for ( $i = 0; $i < self::MAX_BATCHES; $i++ ) {
				$n                 = (int) $purge( $before );
				$deleted[ $kind ] += $n;
				if ( $n < $batch ) {
					break;
				}
			}
			$more = $more || self::MAX_BATCHES === $i;
		}
		if ( $more ) {
			// WordPress refuses a duplicate within 10 minutes of another.
			wp_schedule_single_event( time() + MINUTE_IN_SECONDS, self::CRON_HOOK );
		}
		return $deleted;
	}

	/**
	 * Deletes up to $limit result posts stored before $before, and the
	 * links to them on the objects they were about.
	 *
	 * @param int $before Unix time.
	 * @param int $limit  Most posts.
	 * @return int Posts deleted.
	 */
	private function purge_results( int $before, int $limit ): int {
		$ids = get_posts(
			array(
				'post_type'        => WPRelay_Results_Controller::POST_TYPE,
				'post_status'      => 'any',
				'fields'           => 'ids',
				'posts_per_page'   => $limit,
				'orderby'          => 'ID',
				'order'            => 'ASC',
				'suppress_filters' => true,
				'date_query'       => array(
					array(
						'column' => 'post_date_gmt',
						'before' => gmdate( 'Y-m-d H:i:s', $before ),
					),
				),
			)
		);
		$n   = 0;
		foreach ( $ids as $id ) {
			foreach ( array( 'post', 'user', 'comment' ) as $type ) {
				delete_metadata( $type, 0, WPRelay_Results_Controller::META_RESULT_ID, (string) $id, true );
			}
			if ( wp_delete_post( (int) $id, true ) ) {
				++$n;
			}
		}
		return $n;
	}
}
