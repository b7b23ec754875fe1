<?php
/**
 * WPRelay_Dead_Letters_List_Table: dead deliveries in wp-admin.
 *
 * Loaded by WPRelay_Admin_Page::render() only, after WP_List_Table.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * One page of dead deliveries (most recently dead first): the event, the
 * target, why it died, and a button that replays that one delivery. Paged
 * by cursor like the events list.
 */
class WPRelay_Dead_Letters_List_Table extends WPRelay_Events_List_Table {

	/**
	 * Builds the table.
	 *
	 * @param array[] $deliveries Dead deliveries.
	 * @param string  $next       Next cursor.
	 */
	public function __construct( array $deliveries, string $next ) {
		parent::__construct( $deliveries, $next );
		$this->_args['singular'] = 'wprelay-dead-letter';
		$this->_args['plural']   = 'wprelay-dead-letters';
	}

	/**
	 * Columns.
	 *
	 * @return array
	 */
	public function get_columns() {
		return array(
			'event'    => __( 'Event', 'wprelay' ),
			'target'   => __( 'Target', 'wprelay' ),
			'source'   => __( 'Source', 'wprelay' ),
			'reason'   => __( 'Why it died', 'wprelay' ),
			'attempts' => __( 'Attempts', 'wprelay' ),
			'dead_at'  => __( 'Dead at (UTC)', 'wprelay' ),
			'actions'  => '<span class="screen-reader-text">' . __( 'Actions', 'wprelay' ) . '</span>',
		);
	}

	/**
	 * Message for an empty page.
	 */
	public function no_items() {
		esc_html_e( 'No dead letters: every delivery succeeded or is still being tried.', 'wprelay' );
	}

	/**
	 * A row, with the event id and target as data attributes.
	 *
	 * @param array $item Dead delivery.
	 */
	public function single_row( $item ) {
		echo '<tr data-event-id="' . esc_attr( (string) ( $item['event_id'] ?? '' ) ) . '" data-target="' . esc_attr( (string) ( $item['target'] ?? '' ) ) . '">';
		$this->single_row_columns( $item );
		echo '</tr>';
	}

	/**
	 * The event: type (link to the detail) and id.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_event( $item ) {
		$item['id'] = (string) ( $item['event_id'] ?? '' );
		return parent::column_event( $item );
	}

	/**
	 * The target.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_target( $item ) {
		return esc_html( (string) ( $item['target'] ?? '' ) ) . ' ' . WPRelay_Admin_Page::badge( 'dead' );
	}

	/**
	 * Why it died, and the last answer.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_reason( $item ) {
		$reason = (string) ( $item['reason'] ?? ( $item['last_error'] ?? '' ) );
		return '<span class="wprelay-error">' . esc_html( wp_html_excerpt( $reason, 160, '…' ) ) . '</span>';
	}

	/**
	 * Attempts.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_attempts( $item ) {
		return esc_html( (string) (int) ( $item['attempts'] ?? 0 ) );
	}

	/**
	 * When it died.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_dead_at( $item ) {
		return WPRelay_Admin_Page::when( (string) ( $item['dead_at'] ?? '' ) );
	}

	/**
	 * Replays this delivery only.
	 *
	 * @param array $item Dead delivery.
	 * @return string
	 */
	protected function column_actions( $item ) {
		ob_start();
		WPRelay_Admin_Page::button(
			'wprelay_replay',
			__( 'Replay', 'wprelay' ),
			array(
				'event_id' => (string) ( $item['event_id'] ?? '' ),
				'target'   => (string) ( $item['target'] ?? '' ),
			)
		);
		return (string) ob_get_clean();
	}
}
