<?php
/**
 * WPRelay_Plugin: builds the collaborators and hooks them in.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * The plugin's composition root. It builds every collaborator once, passes
 * each its dependencies through its constructor, and asks each to register
 * its own hooks. Nothing here is static.
 */
class WPRelay_Plugin {

	/**
	 * Schema.
	 *
	 * @var WPRelay_Schema
	 */
	private $schema;

	/**
	 * Sender.
	 *
	 * @var WPRelay_Sender
	 */
	private $sender;

	/**
	 * Emitter.
	 *
	 * @var WPRelay_Emitter
	 */
	private $emitter;

	/**
	 * Dispatcher.
	 *
	 * @var WPRelay_Dispatcher
	 */
	private $dispatcher;

	/**
	 * Health checks (Site Health, WP-CLI, the admin page's notice).
	 *
	 * @var WPRelay_Health
	 */
	private $health;

	/**
	 * The dispatch transaction.
	 *
	 * @var WPRelay_Transaction
	 */
	private $transaction;

	/**
	 * The plugin page's Received tab.
	 *
	 * @var WPRelay_Received_Tab
	 */
	private $received;

	/**
	 * Every collaborator with a register_hooks() method.
	 *
	 * @var object[]
	 */
	private $hooked = array();

	/**
	 * Builds the collaborators.
	 *
	 * @param wpdb $db Database access.
	 */
	public function __construct( wpdb $db ) {
		$config            = new WPRelay_Config();
		$crypto            = new WPRelay_Crypto();
		$this->schema      = new WPRelay_Schema( $db );
		$receipts          = new WPRelay_Receipts( $db, $this->schema );
		$outbox            = new WPRelay_Outbox( $db, $this->schema );
		$limiter           = new WPRelay_Rate_Limiter( $db );
		$verifier          = new WPRelay_Request_Verifier( $config, $crypto );
		$this->sender      = new WPRelay_Sender( $config, $crypto, $outbox );
		$this->emitter     = new WPRelay_Emitter( $config, $crypto, $outbox, $this->sender );
		$this->transaction = new WPRelay_Transaction( $db );
		$this->dispatcher  = new WPRelay_Dispatcher( $receipts, $this->transaction );
		$this->received    = new WPRelay_Received_Tab( $receipts, $this->dispatcher );
		$client            = new WPRelay_Sidecar_Client( $config );
		$this->health      = new WPRelay_Health( $config, $outbox, $receipts, $client );
		$this->hooked      = array(
			$this->schema,
			$this->transaction,
			$this->sender,
			$this->emitter,
			$this->dispatcher,
			new WPRelay_Http_Allowance( $config ),
			new WPRelay_Events_Controller( $verifier, $receipts, $limiter, $this->dispatcher ),
			new WPRelay_User_Sync_Controller( $verifier, $receipts, $limiter, $this->emitter ),
			new WPRelay_Results_Controller( $verifier, $receipts, $limiter, $this->emitter ),
			new WPRelay_Result_Meta_Box(),
			$this->received,
			new WPRelay_Admin_Page( $config, $outbox, $client, $this->sender, $this->health, $this->received ),
			new WPRelay_Site_Health( $this->health, $config ),
			new WPRelay_Privacy( $db, $this->schema ),
			new WPRelay_Retention( $outbox, $receipts ),
		);
	}

	/**
	 * Registers every collaborator's hooks.
	 */
	public function boot(): void {
		foreach ( $this->hooked as $part ) {
			$part->register_hooks();
		}
		add_action( WPRelay_Sender::CRON_HOOK, array( $this->dispatcher, 'recover' ), 20 );
		add_action( 'init', array( $this, 'load_textdomain' ) );
		add_action( 'wp_initialize_site', array( $this, 'initialize_site' ), 200 );
		if ( defined( 'WP_CLI' ) && WP_CLI && class_exists( 'WPRelay_CLI' ) ) {
			( new WPRelay_CLI( $this->health, $this->sender, $this->dispatcher ) )->register();
		}
	}

	/**
	 * Returns the health checks (for code that adds its own views of them).
	 *
	 * @return WPRelay_Health
	 */
	public function health(): WPRelay_Health {
		return $this->health;
	}

	/**
	 * Loads the translations in languages/ (wprelay-{locale}.mo), for
	 * installs that do not get them from translate.wordpress.org.
	 */
	public function load_textdomain(): void {
		load_plugin_textdomain( 'wprelay', false, dirname( plugin_basename( WPRELAY_DIR . '/wprelay.php' ) ) . '/languages' );
	}

	/**
	 * Returns the emitter (for wprelay_emit()).
	 *
	 * @return WPRelay_Emitter
	 */
	public function emitter(): WPRelay_Emitter {
		return $this->emitter;
	}

	/**
	 * Returns the dispatch transaction (for wprelay_after_commit()).
	 *
	 * @return WPRelay_Transaction
	 */
	public function transaction(): WPRelay_Transaction {
		return $this->transaction;
	}

	/**
	 * Returns the dispatcher (for the plugin page and WP-CLI).
	 *
	 * @return WPRelay_Dispatcher
	 */
	public function dispatcher(): WPRelay_Dispatcher {
		return $this->dispatcher;
	}

	/**
	 * Returns the plugin page's Received tab.
	 *
	 * @return WPRelay_Received_Tab
	 */
	public function received_tab(): WPRelay_Received_Tab {
		return $this->received;
	}

	/**
	 * Activation: creates the tables and schedules the outbox job, in every
	 * site of the network when network-activated.
	 *
	 * @param bool $network_wide Whether the plugin is network-activated.
	 */
	public function activate( $network_wide = false ): void {
		$this->each_site(
			(bool) $network_wide,
			function () {
				$this->schema->install();
				$this->sender->ensure_scheduled();
			}
		);
	}

	/**
	 * Deactivation: unschedules the plugin's cron jobs (in every site when
	 * network-deactivated). Data stays (it goes in uninstall.php); stored
	 * receipts are dispatched after reactivation.
	 *
	 * @param bool $network_wide Whether the plugin is network-deactivated.
	 */
	public function deactivate( $network_wide = false ): void {
		$this->each_site(
			(bool) $network_wide,
			static function () {
				wp_clear_scheduled_hook( WPRelay_Sender::CRON_HOOK );
				wp_unschedule_hook( WPRelay_Sender::RETRY_HOOK );
				wp_unschedule_hook( WPRelay_Dispatcher::HOOK );
				wp_unschedule_hook( WPRelay_Retention::CRON_HOOK );
				if ( function_exists( 'as_unschedule_all_actions' ) ) {
					as_unschedule_all_actions( WPRelay_Dispatcher::HOOK, array(), WPRelay_Dispatcher::GROUP );
				}
			}
		);
	}

	/**
	 * Creates a new site's tables when the plugin is network-active
	 * (wp_initialize_site, after core made the site's own tables).
	 *
	 * @param WP_Site $site The new site.
	 */
	public function initialize_site( $site ): void {
		if ( ! function_exists( 'is_plugin_active_for_network' ) ) {
			require_once ABSPATH . 'wp-admin/includes/plugin.php';
		}
		if ( ! $site instanceof WP_Site || ! is_plugin_active_for_network( plugin_basename( WPRELAY_DIR . '/wprelay.php' ) ) ) {
			return;
		}
		switch_to_blog( (int) $site->blog_id );
		$this->schema->install();
		$this->sender->ensure_scheduled();
		restore_current_blog();
	}

	/**
	 * Runs $work in the current site, or in every site of the network.
	 *
	 * @param bool     $network_wide Every site of the network.
	 * @param callable $work         Work.
	 */
	private function each_site( bool $network_wide, callable $work ): void {
		if ( ! is_multisite() || ! $network_wide ) {
			$work();
			return;
		}
		$ids = get_sites(
			array(
				'fields' => 'ids',
				'number' => 0,
			)
		);
		foreach ( $ids as $id ) {
			switch_to_blog( (int) $id );
			$work();
			restore_current_blog();
		}
	}
}
