<?php
/**
 * WPRelay_Rate_Limiter: a small fixed-window limit per route, and per client
 * for failed authentications when a persistent object cache is present.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Two counters, in one-minute windows:
 *
 * - authenticated requests, per route (the sidecar is the only client that
 *   authenticates, whatever address or proxy it comes through): the object
 *   cache's incr when a persistent cache is present, else one atomic
 *   INSERT … ON DUPLICATE KEY UPDATE on a non-autoloaded option per route
 *   and window, the previous window dropped; at most two rows per route;
 * - failed authentications, per route and client IP, only in a persistent
 *   object cache (memory, expiring): over the budget they are answered 429
 *   instead of 401. Without one nothing is counted and nothing is written
 *   for a request that does not authenticate: a flood of them costs a
 *   signature check each and never touches wp_options.
 *
 * Both are counted after verification, so a flood of unauthenticated
 * requests never uses up the sidecar's budget nor gets it refused, even
 * when it comes through the same proxy address.
 */
class WPRelay_Rate_Limiter {

	/** Window length in seconds. */
	const WINDOW = 60;

	/** Default authenticated requests per window and route. */
	const DEFAULT_LIMIT = 600;

	/** Default failed authentications per window, route and client (object cache only). */
	const DEFAULT_FAILURES = 60;

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
	 * Counts one authenticated request and tells whether it is over the
	 * route's limit.
	 *
	 * @param string $route Route name, e.g. "events".
	 * @return int 0 when allowed, else the seconds until the window ends.
	 */
	public function hit( string $route ): int {
		/**
		 * Filters how many authenticated requests a wprelay route takes per
		 * minute. 0 turns the limit off.
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
		$window = intdiv( time(), self::WINDOW );
		$name   = WPRelay_Schema::RATE_OPTION_PREFIX . sanitize_key( $route ) . '_';
		$count  = wp_using_ext_object_cache() ? $this->cache_incr( $name . $window ) : $this->option_incr( $name, $window );
		return $count <= $limit ? 0 : $this->wait( $window );
	}

	/**
	 * Tells whether the client is over its budget of failed
	 * authentications, this one included (persistent object cache only;
	 * 0 without one).
	 *
	 * @param string $route Route name.
	 * @return int 0 when allowed, else the seconds until the window ends.
	 */
	public function failing( string $route ): int {
		$limit = $this->failure_limit( $route );
		if ( $limit <= 0 || ! wp_using_ext_object_cache() ) {
			return 0;
		}
		$window = intdiv( time(), self::WINDOW );
		$count  = (int) wp_cache_get( $this->failure_key( $route, $window ), 'wprelay' );
		return $count <= $limit ? 0 : $this->wait( $window );
	}

	/**
	 * Counts a failed authentication of the client, in the persistent object
	 * cache; without one, does nothing.
	 *
	 * @param string $route Route name.
	 */
	public function fail( string $route ): void {
		if ( $this->failure_limit( $route ) <= 0 || ! wp_using_ext_object_cache() ) {
			return;
		}
		$this->cache_incr( $this->failure_key( $route, intdiv( time(), self::WINDOW ) ) );
	}

	/**
	 * The client's address, as the wprelay_client_ip filter says.
	 *
	 * @param string $route Route name.
	 * @return string
	 */
	public function client_ip( string $route ): string {
		$ip = isset( $_SERVER['REMOTE_ADDR'] ) ? sanitize_text_field( wp_unslash( $_SERVER['REMOTE_ADDR'] ) ) : '';
		/**
		 * Filters the client address failed authentications are counted
		 * by. Behind a trusted proxy, return the address it forwarded.
		 *
		 * @since 0.1.0
		 *
		 * @param string $ip    REMOTE_ADDR.
		 * @param string $route Route name.
		 */
		return (string) apply_filters( 'wprelay_client_ip', $ip, $route );
	}

	/**
	 * The failure budget, from the filter.
	 *
	 * @param string $route Route name.
	 * @return int
	 */
	private function failure_limit( string $route ): int {
		/**
		 * Filters how many failed authentications one client may make to a
		 * wprelay route per minute; the next ones are answered 429 instead
		 * of 401. Counted only in a persistent object cache. 0 turns the
		 * limit off.
		 *
		 * @since 0.2.0
		 *
		 * @param int    $limit Default 60.
		 * @param string $route Route name.
		 */
		return (int) apply_filters( 'wprelay_auth_failure_limit', self::DEFAULT_FAILURES, $route );
	}

	/**
	 * The cache key of a client's failures in a window.
	 *
	 * @param string $route  Route name.
	 * @param int    $window Window number.
	 * @return string
	 */
	private function failure_key( string $route, int $window ): string {
		return 'fail_' . substr( md5( $route . '|' . $this->client_ip( $route ) ), 0, 16 ) . '_' . $window;
	}

	/**
	 * Seconds until the window after $window starts.
	 *
	 * @param int $window Window number.
	 * @return int
	 */
	private function wait( int $window ): int {
		return max( 1, ( $window + 1 ) * self::WINDOW - time() );
	}

	/**
	 * Adds one to a counter in the object cache.
	 *
	 * @param string $key Cache key.
	 * @return int The new count.
	 */
	private function cache_incr( string $key ): int {
		wp_cache_add( $key, 0, 'wprelay', 2 * self::WINDOW );
		return (int) wp_cache_incr( $key, 1, 'wprelay' );
	}

	/**
	 * Adds one to a route's counter option for a window, dropping the
	 * route's older windows when it is the first count of this one.
	 *
	 * @param string $prefix Option name without the window.
	 * @param int    $window Window number.
	 * @return int The new count.
	 */
	private function option_incr( string $prefix, int $window ): int {
		$name = $prefix . $window;
		$this->db->query(
			$this->db->prepare(
				"INSERT INTO {$this->db->options} (option_name, option_value, autoload) VALUES (%s, '1', 'no') ON DUPLICATE KEY UPDATE option_value = option_value + 1",
				$name
			)
		);
		if ( 1 === (int) $this->db->rows_affected ) {
			$this->db->query(
				$this->db->prepare(
					"DELETE FROM {$this->db->options} WHERE option_name LIKE %s AND option_name <> %s",
					$this->db->esc_like( $prefix ) . '%',
					$name
				)
			);
			return 1;
		}
		return (int) $this->db->get_var( $this->db->prepare( "SELECT option_value FROM {$this->db->options} WHERE option_name = %s", $name ) );
	}
}
