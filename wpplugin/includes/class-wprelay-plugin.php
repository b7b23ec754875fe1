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
		$config           = new WPRelay_Config();
		$crypto           = new WPRelay_Crypto();
		$this->schema     = new WPRelay_Schema( $db );
		$receipts         = new WPRelay_Receipts( $db, $this->schema );
		$outbox           = new WPRelay_Outbox( $db, $this->schema );
		$limiter          = new WPRelay_Rate_Limiter( $db );
		$verifier         = new WPRelay_Request_Verifier( $config, $crypto );
		$this->sender     = new WPRelay_Sender( $config, $crypto, $outbox );
		$this->emitter    = new WPRelay_Emitter( $config, $crypto, $outbox, $this->sender );
		$this->dispatcher = new WPRelay_Dispatcher( $receipts );
		$client           = new WPRelay_Sidecar_Client( $config );
		$this->health     = new WPRelay_Health( $config, $outbox, $receipts, $client );
		$this->hooked     = array(
			$this->schema,
			$this->sender,
			$this->emitter,
			$this->dispatcher,
			new WPRelay_Http_Allowance( $config ),
			new WPRelay_Events_Controller( $verifier, $receipts, $limiter, $this->dispatcher ),
			new WPRelay_User_Sync_Controller( $verifier, $receipts, $limiter, $this->emitter ),
			new WPRelay_Results_Controller( $verifier, $receipts, $limiter, $this->emitter ),
			new WPRelay_Result_Meta_Box(),
			new WPRelay_Admin_Page( $config, $outbox, $client, $this->sender, $this->health ),
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
		if ( defined( 'WP_CLI' ) && WP_CLI && class_exists( 'WPRelay_CLI' ) ) {
			( new WPRelay_CLI( $this->health, $this->sender ) )->register();
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
	 * Activation: creates the tables and schedules the outbox job.
	 */
	public function activate(): void {
		$this->schema->install();
		$this->sender->ensure_scheduled();
	}

	/**
	 * Deactivation: unschedules the plugin's cron jobs. Data stays (it goes
	 * in uninstall.php); stored receipts are dispatched after reactivation.
	 */
	public function deactivate(): void {
		wp_clear_scheduled_hook( WPRelay_Sender::CRON_HOOK );
		wp_unschedule_hook( WPRelay_Sender::RETRY_HOOK );
		wp_unschedule_hook( WPRelay_Dispatcher::HOOK );
		wp_unschedule_hook( WPRelay_Retention::CRON_HOOK );
	}
}
