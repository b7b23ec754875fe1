<?php
/**
 * WPRelay_Site_Health: Tools → Site Health tests and Info section.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Shows each WPRelay_Health check as a Site Health test (status, badge,
 * what it means and the setting to change), and adds a "Webhook Relay"
 * section to Site Health → Info: versions, URLs, which constants are set,
 * outbox counts. Never a secret: constants are reported as set or not set.
 */
class WPRelay_Site_Health {

	/** Prefix of the tests' ids. */
	const PREFIX = 'wprelay_';

	/**
	 * The checks.
	 *
	 * @var WPRelay_Health
	 */
	private $health;

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Builds the Site Health integration.
	 *
	 * @param WPRelay_Health $health The checks.
	 * @param WPRelay_Config $config Settings.
	 */
	public function __construct( WPRelay_Health $health, WPRelay_Config $config ) {
		$this->health = $health;
		$this->config = $config;
	}

	/**
	 * Hooks the tests and the Info section in.
	 */
	public function register_hooks(): void {
		add_filter( 'site_status_tests', array( $this, 'tests' ) );
		add_filter( 'debug_information', array( $this, 'debug_information' ) );
	}

	/**
	 * Adds one direct test per check.
	 *
	 * @param array $tests Site Health tests.
	 * @return array
	 */
	public function tests( $tests ) {
		foreach ( array_keys( $this->health->checks() ) as $id ) {
			$tests['direct'][ self::PREFIX . $id ] = array(
				/* translators: %s: check id */
				'label' => sprintf( __( 'Webhook Relay: %s', 'wprelay' ), $id ),
				'test'  => function () use ( $id ) {
					return $this->test( (string) $id );
				},
			);
		}
		return $tests;
	}

	/**
	 * Runs one check as a Site Health test.
	 *
	 * @param string $id Check id.
	 * @return array The Site Health result.
	 */
	public function test( string $id ): array {
		$r      = $this->health->run( $id );
		$r      = null === $r ? array(
			'status'      => 'recommended',
			'label'       => $id,
			'value'       => '',
			'description' => '',
		) : $r;
		$colors = array(
			'good'        => 'blue',
			'recommended' => 'orange',
			'critical'    => 'red',
		);
		return array(
			'label'       => $r['label'],
			'status'      => $r['status'],
			'badge'       => array(
				'label' => __( 'Webhook Relay', 'wprelay' ),
				'color' => $colors[ $r['status'] ],
			),
			'description' => '<p>' . esc_html( $r['description'] ) . '</p>',
			'actions'     => 'good' === $r['status'] ? '' : '<p><a href="' . esc_url( admin_url( 'tools.php?page=wprelay&tab=health' ) ) . '">' . esc_html__( 'Open Tools → Webhook Relay', 'wprelay' ) . '</a></p>',
			'test'        => self::PREFIX . $id,
		);
	}

	/**
	 * Adds the Webhook Relay section to Site Health → Info.
	 *
	 * @param array $info Sections.
	 * @return array
	 */
	public function debug_information( $info ) {
		$fields = array(
			'version'         => array(
				'label' => __( 'Plugin version', 'wprelay' ),
				'value' => WPRELAY_VERSION,
			),
			'db_version'      => array(
				'label' => __( 'Schema version', 'wprelay' ),
				'value' => (string) get_option( WPRelay_Schema::VERSION_OPTION, '' ),
			),
			'issuer'          => array(
				'label' => __( 'Site URL (token issuer)', 'wprelay' ),
				'value' => $this->config->site_url(),
			),
			'sidecar_url'     => array(
				'label' => __( 'Sidecar URL', 'wprelay' ),
				'value' => $this->config->sidecar_url(),
			),
			'hook_url'        => array(
				'label' => __( 'Events are sent to', 'wprelay' ),
				'value' => $this->config->hook_url(),
			),
			'admin_url'       => array(
				'label' => __( 'Sidecar admin API', 'wprelay' ),
				'value' => $this->config->get( 'WPRELAY_ADMIN_URL' ),
			),
			'source'          => array(
				'label' => __( 'Source name', 'wprelay' ),
				'value' => $this->config->get( 'WPRELAY_SOURCE' ),
			),
			'sidecar_version' => array(
				'label' => __( 'Sidecar version', 'wprelay' ),
				'value' => $this->sidecar_version(),
			),
		);
		foreach ( $this->config->status() as $name => $set ) {
			$fields[ strtolower( $name ) ] = array(
				'label'   => $name,
				'value'   => $set ? __( 'set', 'wprelay' ) : __( 'not set', 'wprelay' ),
				'debug'   => $set ? 'set' : 'not set',
				'private' => false,
			);
		}
		foreach ( $this->health->outbox()->counts() as $state => $n ) {
			$fields[ 'outbox_' . $state ] = array(
				/* translators: %s: outbox state */
				'label' => sprintf( __( 'Outbox rows %s', 'wprelay' ), $state ),
				'value' => (string) $n,
			);
		}
		$next                 = wp_next_scheduled( WPRelay_Sender::CRON_HOOK );
		$fields['next_flush'] = array(
			'label' => __( 'Next outbox run (WP-Cron)', 'wprelay' ),
			'value' => $next ? gmdate( 'Y-m-d H:i:s', (int) $next ) . ' UTC' : __( 'not scheduled', 'wprelay' ),
		);
		$info['wprelay']      = array(
			'label'  => __( 'Webhook Relay', 'wprelay' ),
			'fields' => $fields,
		);
		return $info;
	}

	/**
	 * Returns the sidecar's version from /readyz, or why it is unknown.
	 *
	 * @return string
	 */
	private function sidecar_version(): string {
		$ready = $this->health->client()->ready();
		if ( is_wp_error( $ready ) ) {
			return __( 'unknown (admin API not reachable)', 'wprelay' );
		}
		return (string) ( $ready['version'] ?? '' );
	}
}
