<?php
/**
 * Plugin Name:       Webhook Relay
 * Plugin URI:        https://github.com/wprelay/wprelay
 * Description:       Receives verified, deduplicated webhooks from the wprelay sidecar and emits signed events (posts, users, comments, WooCommerce orders) to it through a durable outbox.
 * Version:           0.1.0
 * Requires at least: 6.1
 * Requires PHP:      8.1
 * Author:            wprelay
 * License:           GPL-2.0-or-later
 * License URI:       https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:       wprelay
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

define( 'WPRELAY_VERSION', '0.1.0' );
define( 'WPRELAY_DIR', __DIR__ );

require_once WPRELAY_DIR . '/includes/class-wprelay-crypto-exception.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-crypto.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-config.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-schema.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-receipts.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-outbox.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-rate-limiter.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-request-verifier.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-transaction.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-dispatcher.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-sender.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-emitter.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-http-allowance.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-rest-controller.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-events-controller.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-user-sync-controller.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-results-controller.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-result-meta-box.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-sidecar-client.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-received-tab.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-admin-page.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-health.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-site-health.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-privacy.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-retention.php';
require_once WPRELAY_DIR . '/includes/class-wprelay-plugin.php';
require_once WPRELAY_DIR . '/includes/functions.php';
if ( defined( 'WP_CLI' ) && WP_CLI ) {
	require_once WPRELAY_DIR . '/includes/class-wprelay-cli-namespace.php';
	require_once WPRELAY_DIR . '/includes/class-wprelay-cli.php';
}

$GLOBALS['wprelay'] = new WPRelay_Plugin( $GLOBALS['wpdb'] );
$GLOBALS['wprelay']->boot();
register_activation_hook( __FILE__, array( $GLOBALS['wprelay'], 'activate' ) );
register_deactivation_hook( __FILE__, array( $GLOBALS['wprelay'], 'deactivate' ) );
