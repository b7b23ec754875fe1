<?php
/**
 * WPRelay_CLI_Namespace: the `wp wprelay` command groups.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Inspects and operates Webhook Relay: the sidecar's health, received events, dead letters and the outbox.
 *
 * ## EXAMPLES
 *
 *     wp wprelay status
 *     wp wprelay events list --status=failed
 *     wp wprelay outbox retry --failed
 */
class WPRelay_CLI_Namespace extends WP_CLI\Dispatcher\CommandNamespace {
}
