<?php
/**
 * WPRelay_Rate_Limiter: a small fixed-window limit per client and route.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Counts requests per (route, client IP) in one-minute windows and refuses
 * those over the limit. The counter is one atomic statement: the object
 * cache's incr when a persistent cache is present, else an
 * INSERT … ON DUPLICATE KEY UPDATE on a non-autoloaded option, so that
 * concurrent PHP workers never lose a count.
 *
 * The limit is per client IP so that a flood from elsewhere does not use up
 * the sidecar's budget; the sidecar honours Retry-After.
 */
class WPRelay_Rate_Limiter {

	/** Window length in seconds. */
	const WINDOW = 60;

	/** Default requests per window per route and client. */
	const DEFAULT_LIMIT = 600;

	/**
	 * Database access.
	 *
	 * @var wpdb
	 */
	private $db;

	/**
	 * Builds the limiter.
	 *
	 * @param wpdb $db Database access.
	 */
	public function __construct( wpdb $db ) {
		$this->db = $db;
	}

	/**
	 * Counts one request and tells whether it is over the limit.
	 *
	 * @param string $route Route name, e.g. "events".
	 * @return int 0 when allowed, else the seconds until the window ends.
	 */
	public function hit( string $route ): int {
		$ip = isset( $_SERVER['REMOTE_ADDR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) ) : '';
		/**
		 * Filters the client address the rate limit counts by. Behind a
		 * trusted proxy, return the address it forwarded.
		 *
		 * @since 0.1.0
		 *
		 * @param string $ip    REMOTE_ADDR.
		 * @param string $route Route name.
		 */
		$ip = (string) apply_filters( 'wprelay_client_ip', $ip, $route );
		/**
		 * Filters how many requests one client may make to a wprelay route
		 * per minute. 0 turns the limit off.
		 *
		 * @since 0.1.0
		 *
		 * @param int    $limit Default 600.
		 * @param string $route Route name: events, user-sync or results.
		 */
		$limit = (int) apply_filters( 'wprelay_rate_limit', self::DEFAULT_LIMIT, $route );
		if ( $limit <= 0 ) {
			return 0;
		}
		$now    = time();
		$window = intdiv( $now, self::WINDOW );
		$count  = $this->incr( $route . '|' . $ip, $window );
		if ( $count <= $limit ) {
			return 0;
		}
		return max( 1, ( $window + 1 ) * self::WINDOW - $now );
	}

	/**
	 * Adds one to a window's counter and returns the new count.
	 *
	 * @param string $bucket Route and client.
	 * @param int    $window Window number.
	 * @return int
	 */
	private function incr( string $bucket, int $window ): int {
		$name = WPRelay_Schema::RATE_OPTION_PREFIX . substr( md5( $bucket ), 0, 16 ) . '_' . $window;
		if ( wp_using_ext_object_cache() ) {
			wp_cache_add( $name, 0, 'wprelay', 2 * self::WINDOW );
			return (int) wp_cache_incr( $name, 1, 'wprelay' );
		}
		$this->db->query(
			$this->db->prepare(
				"INSERT INTO {$this->db->options} (option_name, option_value, autoload) VALUES (%s, '1', 'no') ON DUPLICATE KEY UPDATE option_value = option_value + 1",
				$name
			)
		);
		if ( 1 === (int) $this->db->rows_affected ) {
			// First hit of this window: drop the window before the last one.
			$this->db->query(
				$this->db->prepare(
					"DELETE FROM {$this->db->options} WHERE option_name LIKE %s AND option_name < %s",
					$this->db->esc_like( WPRelay_Schema::RATE_OPTION_PREFIX . substr( md5( $bucket ), 0, 16 ) . '_' ) . '%',
					WPRelay_Schema::RATE_OPTION_PREFIX . substr( md5( $bucket ), 0, 16 ) . '_' . ( $window - 1 )
				)
			);
			return 1;
		}
		return (int) $this->db->get_var( $this->db->prepare( "SELECT option_value FROM {$this->db->options} WHERE option_name = %s", $name ) );
	}
}
