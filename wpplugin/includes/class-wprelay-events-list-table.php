<?php
/**
 * WPRelay_Events_List_Table: the sidecar's events in wp-admin.
 *
 * Loaded by WPRelay_Admin_Page::render() only, after WP_List_Table.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * One page of events from the admin API (newest first), with status badges,
 * each delivery's state, a link to the detail and a Replay button. The API
 * pages by cursor, not by page number, so the navigation is "Newest",
 * "Newer" and "Older": the cursors of the pages seen so far travel in the
 * URL (prev), which keeps the page usable without JavaScript.
 */
class WPRelay_Events_List_Table extends WP_List_Table {

	/** Most cursors kept in the URL for "Newer". */
	const MAX_PREV = 30;

	/**
	 * Events of this page, as the admin API returned them.
	 *
	 * @var array[]
	 */
	protected $events;

	/**
	 * The cursor of the next (older) page, '' on the last page.
	 *
	 * @var string
	 */
	protected $next;

	/**
	 * Builds the table.
	 *
	 * @param array[] $events Events.
	 * @param string  $next   Next cursor.
	 */
	public function __construct( array $events, string $next ) {
		parent::__construct(
			array(
				'singular' => 'wprelay-event',
				'plural'   => 'wprelay-events',
				'ajax'     => false,
				'screen'   => WPRelay_Admin_Page::HOOK,
			)
		);
		$this->events = $events;
		$this->next   = $next;
	}

	/**
	 * Columns.
	 *
	 * @return array
	 */
	public function get_columns() {
		return array(
			'event'      => __( 'Event', 'wprelay' ),
			'source'     => __( 'Source', 'wprelay' ),
			'status'     => __( 'Status', 'wprelay' ),
			'deliveries' => __( 'Deliveries', 'wprelay' ),
			'received'   => __( 'Received (UTC)', 'wprelay' ),
			'actions'    => '<span class="screen-reader-text">' . __( 'Actions', 'wprelay' ) . '</span>',
		);
	}

	/**
	 * Fills the items; the API already paged them.
	 */
	public function prepare_items() {
		$this->_column_headers = array( $this->get_columns(), array(), array(), 'event' );
		$this->items           = $this->events;
	}

	/**
	 * Message for an empty page.
	 */
	public function no_items() {
		esc_html_e( 'No events match. Webhooks appear here as soon as the sidecar has them.', 'wprelay' );
	}

	/**
	 * A row, with the event id as a data attribute.
	 *
	 * @param array $item Event.
	 */
	public function single_row( $item ) {
		echo '<tr data-event-id="' . esc_attr( (string) ( $item['id'] ?? '' ) ) . '">';
		$this->single_row_columns( $item );
		echo '</tr>';
	}

	/**
	 * The event column: type (link to the detail) and id.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_event( $item ) {
		$id   = (string) ( $item['id'] ?? '' );
		$url  = WPRelay_Admin_Page::url( array( 'event' => $id ) );
		$type = '' === (string) ( $item['type'] ?? '' ) ? __( '(no type)', 'wprelay' ) : (string) $item['type'];
		return '<strong><a class="row-title wprelay-event-link" href="' . esc_url( $url ) . '">' . esc_html( $type ) . '</a></strong>'
			. '<br><code class="wprelay-id">' . esc_html( $id ) . '</code>'
			. $this->row_actions( array( 'view' => '<a href="' . esc_url( $url ) . '">' . esc_html__( 'Details and attempts', 'wprelay' ) . '</a>' ) );
	}

	/**
	 * Source and tenant.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_source( $item ) {
		$out = esc_html( (string) ( $item['source'] ?? '' ) );
		if ( ! empty( $item['tenant'] ) ) {
			$out .= '<br><span class="description">' . esc_html( (string) $item['tenant'] ) . '</span>';
		}
		return $out;
	}

	/**
	 * The status badge.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_status( $item ) {
		return WPRelay_Admin_Page::badge( (string) ( $item['status'] ?? '' ) );
	}

	/**
	 * Each delivery: target, state, attempts, last error.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_deliveries( $item ) {
		$ds = (array) ( $item['deliveries'] ?? array() );
		if ( empty( $ds ) ) {
			return '<span class="description">' . esc_html__( 'no route', 'wprelay' ) . '</span>';
		}
		$out = '<ul class="wprelay-deliveries">';
		foreach ( $ds as $d ) {
			$out .= '<li>' . esc_html( (string) ( $d['target'] ?? '' ) ) . ' ' . WPRelay_Admin_Page::badge( (string) ( $d['status'] ?? '' ) );
			/* translators: %d: attempts */
			$out .= ' <span class="description">' . esc_html( sprintf( _n( '%d attempt', '%d attempts', (int) ( $d['attempts'] ?? 0 ), 'wprelay' ), (int) ( $d['attempts'] ?? 0 ) ) ) . '</span>';
			if ( ! empty( $d['last_error'] ) && 'succeeded' !== ( $d['status'] ?? '' ) ) {
				$out .= '<br><span class="wprelay-error">' . esc_html( wp_html_excerpt( (string) $d['last_error'], 80, '…' ) ) . '</span>';
			}
			$out .= '</li>';
		}
		return $out . '</ul>';
	}

	/**
	 * When the sidecar received it.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_received( $item ) {
		return WPRelay_Admin_Page::when( (string) ( $item['received_at'] ?? '' ) );
	}

	/**
	 * The Replay button.
	 *
	 * @param array $item Event.
	 * @return string
	 */
	protected function column_actions( $item ) {
		if ( empty( $item['deliveries'] ) ) {
			return '';
		}
		ob_start();
		WPRelay_Admin_Page::button( 'wprelay_replay', __( 'Replay', 'wprelay' ), array( 'event_id' => (string) ( $item['id'] ?? '' ) ) );
		return (string) ob_get_clean();
	}

	/**
	 * The cursor navigation above and below the table.
	 *
	 * @param string $which top or bottom.
	 */
	protected function display_tablenav( $which ) {
		$cursor = WPRelay_Admin_Page::arg( 'cursor' );
		$prev   = array_filter( explode( '.', WPRelay_Admin_Page::arg( 'prev' ) ), 'strlen' );
		$base   = array(
			'tab'    => WPRelay_Admin_Page::arg( 'tab' ),
			'status' => WPRelay_Admin_Page::arg( 'status' ),
			'source' => WPRelay_Admin_Page::arg( 'source' ),
			'target' => WPRelay_Admin_Page::arg( 'target' ),
			'type'   => WPRelay_Admin_Page::arg( 'type' ),
		);
		$links  = array();
		if ( '' !== $cursor ) {
			$links[] = '<a class="button" href="' . esc_url( WPRelay_Admin_Page::url( $base ) ) . '">« ' . esc_html__( 'Newest', 'wprelay' ) . '</a>';
			$back    = $prev;
			$to      = (string) array_pop( $back );
			$links[] = '<a class="button wprelay-newer" href="' . esc_url(
				WPRelay_Admin_Page::url(
					array_merge(
						$base,
						array(
							'cursor' => '-' === $to ? '' : $to,
							'prev'   => implode( '.', $back ),
						)
					)
				)
			) . '">‹ ' . esc_html__( 'Newer', 'wprelay' ) . '</a>';
		}
		if ( '' !== $this->next ) {
			$prev[]  = '' === $cursor ? '-' : $cursor;
			$prev    = array_slice( $prev, -self::MAX_PREV );
			$links[] = '<a class="button wprelay-older" href="' . esc_url(
				WPRelay_Admin_Page::url(
					array_merge(
						$base,
						array(
							'cursor' => $this->next,
							'prev'   => implode( '.', $prev ),
						)
					)
				)
			) . '">' . esc_html__( 'Older', 'wprelay' ) . ' ›</a>';
		}
		echo '<div class="tablenav ' . esc_attr( $which ) . '"><div class="tablenav-pages wprelay-pages">';
		/* translators: %d: number of rows on this page */
		echo '<span class="displaying-num">' . esc_html( sprintf( _n( '%d on this page', '%d on this page', count( $this->items ), 'wprelay' ), count( $this->items ) ) ) . '</span> ';
		echo implode( ' ', $links ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- built from escaped parts above.
		echo '</div><br class="clear"></div>';
	}
}
