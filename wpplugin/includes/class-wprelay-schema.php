<?php
/**
 * WPRelay_Schema: the plugin's tables and their version.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Creates and upgrades the plugin's two tables with dbDelta:
 *
 * - receipts: one row per request the sidecar delivered (UNIQUE
 *   idempotency_key), the dedupe record and the dispatch queue (attempts,
 *   next_at, the lease of the runner that claimed it, and the subject whose
 *   order it keeps); InnoDB, because each dispatch is a transaction on it;
 * - outbox: one row per event WordPress emits, until the sidecar took it.
 *
 * The schema version is kept in an autoloaded option (it is read on every
 * request) and compared on plugins_loaded, so that an upgrade that ships
 * without an activation still migrates.
 *
 * On a multisite network each site has its own tables (its own prefix):
 * network activation creates every site's, a site created later gets its
 * own on wp_initialize_site, deleting a site drops them (wpmu_drop_tables),
 * and uninstall.php drops every site's.
 */
class WPRelay_Schema {

	/** Version of the CREATE TABLE statements below; bump on any change. */
	const VERSION = '3';

	/** Option holding the installed schema version. */
	const VERSION_OPTION = 'wprelay_db_version';

	/** Table names without the site's prefix. */
	const RECEIPTS = 'wprelay_receipts';
	const OUTBOX   = 'wprelay_outbox';

	/** Every option the plugin writes (uninstall.php deletes them). */
	const OPTIONS = array( self::VERSION_OPTION );

	/** Option name prefix of the rate limiter's counters. */
	const RATE_OPTION_PREFIX = 'wprelay_rate_';

	/**
	 * Database access.
	 *
	 * @var wpdb
	 */
	private $db;

	/**
	 * Builds the schema.
	 *
	 * @param wpdb $db Database access.
	 */
	public function __construct( wpdb $db ) {
		$this->db = $db;
	}

	/**
	 * Hooks the version check in.
	 */
	public function register_hooks(): void {
		add_action( 'plugins_loaded', array( $this, 'maybe_upgrade' ), 5 );
		add_filter( 'wpmu_drop_tables', array( $this, 'site_tables' ), 10, 2 );
	}

	/**
	 * Adds a site's tables to those WordPress drops when the site is
	 * deleted.
	 *
	 * @param string[] $tables  Table names.
	 * @param int      $site_id Site id.
	 * @return string[]
	 */
	public function site_tables( $tables, $site_id = 0 ) {
		$prefix   = $this->db->get_blog_prefix( (int) $site_id );
		$tables[] = $prefix . self::RECEIPTS;
		$tables[] = $prefix . self::OUTBOX;
		return $tables;
	}

	/**
	 * Returns the receipts table's full name.
	 *
	 * @return string
	 */
	public function receipts(): string {
		return $this->db->prefix . self::RECEIPTS;
	}

	/**
	 * Returns the outbox table's full name.
	 *
	 * @return string
	 */
	public function outbox(): string {
		return $this->db->prefix . self::OUTBOX;
	}

	/**
	 * Creates or upgrades the tables when the installed version differs.
	 */
	public function maybe_upgrade(): void {
		if ( get_option( self::VERSION_OPTION ) !== self::VERSION ) {
			$this->install();
		}
	}

	/**
	 * Runs dbDelta over both tables and records the version.
	 */
	public function install(): void {
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$charset = $this->db->get_charset_collate();
		// dbDelta's rules: one column per line, two spaces after PRIMARY KEY,
		// KEY not INDEX, no backticks around names.
		$receipts = "CREATE TABLE {$this->receipts()} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  idempotency_key varchar(191) NOT NULL,
  route varchar(32) NOT NULL DEFAULT '',
  event_id varchar(64) NOT NULL DEFAULT '',
  event_type varchar(191) NOT NULL DEFAULT '',
  event longtext NOT NULL,
  trace_id varchar(64) NOT NULL DEFAULT '',
  received_at datetime NOT NULL,
  status varchar(20) NOT NULL DEFAULT 'stored',
  result_ref varchar(191) NOT NULL DEFAULT '',
  last_error text NULL,
  subject_key varchar(191) NOT NULL DEFAULT '',
  attempts smallint(5) unsigned NOT NULL DEFAULT 0,
  next_at datetime NULL,
  lease_until datetime NULL,
  claim_token varchar(32) NOT NULL DEFAULT '',
  PRIMARY KEY  (id),
  UNIQUE KEY idempotency_key (idempotency_key),
  KEY status_received (status,received_at),
  KEY received_at (received_at),
  KEY status_next (status,next_at),
  KEY subject_key (subject_key,id),
  KEY event_id (event_id)
) $charset ENGINE=InnoDB;";
		$outbox   = "CREATE TABLE {$this->outbox()} (
  id bigint(20) unsigned NOT NULL AUTO_INCREMENT,
  idempotency_key char(36) NOT NULL,
  event_type varchar(191) NOT NULL,
  object_ref varchar(191) NOT NULL DEFAULT '',
  payload longtext NOT NULL,
  state varchar(20) NOT NULL DEFAULT 'pending',
  attempts smallint(5) unsigned NOT NULL DEFAULT 0,
  next_at datetime NOT NULL,
  last_error text NULL,
  created_at datetime NOT NULL,
  sent_at datetime NULL,
  PRIMARY KEY  (id),
  UNIQUE KEY idempotency_key (idempotency_key),
  KEY state_next (state,next_at),
  KEY state_sent (state,sent_at)
) $charset;";
		$from     = (string) get_option( self::VERSION_OPTION, '' );
		dbDelta( array( $receipts, $outbox ) );
		if ( in_array( $from, array( '1', '2' ), true ) ) {
			// Versions 1 and 2 dispatched without a transaction: a receipt they left
			// "dispatching" may be half applied. Show it instead of rerunning it.
			$this->db->query( "UPDATE {$this->receipts()} SET status = 'failed', last_error = 'interrupted before the upgrade to transactional dispatch: check what its handlers wrote, then replay it' WHERE status = 'dispatching' AND lease_until IS NULL" );
			// Before version 3 the rate limiter kept a counter row per client IP.
			$this->db->query( $this->db->prepare( "DELETE FROM {$this->db->options} WHERE option_name LIKE %s", $this->db->esc_like( self::RATE_OPTION_PREFIX ) . '%' ) );
		}
		// Autoloaded: maybe_upgrade() reads it on every request. Deleted
		// first because update_option() keeps an existing row's autoload.
		delete_option( self::VERSION_OPTION );
		add_option( self::VERSION_OPTION, self::VERSION, '', 'yes' );
		WPRelay_Results_Controller::grant_caps();
	}

	/**
	 * Drops both tables (uninstall only).
	 */
	public function drop(): void {
		// Table names come from constants and the site's prefix, not from input.
		$this->db->query( "DROP TABLE IF EXISTS {$this->receipts()}" );
		$this->db->query( "DROP TABLE IF EXISTS {$this->outbox()}" );
	}
}
