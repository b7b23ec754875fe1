<?php
/**
 * WPRelay_Privacy: personal-data exporter and eraser, privacy-policy text.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Tools → Export / Erase Personal Data for what the plugin keeps about a
 * person, found by email address and by user id:
 *
 * - outbox rows: events this site emitted whose payload names the email,
 *   or that are about the user ("user:ID");
 * - receipts: events the sidecar delivered whose envelope names the email,
 *   or that user-sync applied to the user;
 * - results: wprelay_result posts about the user, or whose data names the
 *   email.
 *
 * Erasing deletes outbox rows and result posts, and blanks the event body
 * of receipts (the row stays, so that a late repeat of the delivery is
 * still recognized as a duplicate). Rows still in flight (a pending outbox
 * row, a receipt not yet dispatched) are retained and reported; erase
 * again once they are done.
 */
class WPRelay_Privacy {

	/** Rows per exporter/eraser page. */
	const PAGE = 50;

	/**
	 * Database access.
	 *
	 * @var wpdb
	 */
	private $db;

	/**
	 * Table names.
	 *
	 * @var WPRelay_Schema
	 */
	private $schema;

	/**
	 * Builds the privacy tools.
	 *
	 * @param wpdb           $db     Database access.
	 * @param WPRelay_Schema $schema Table names.
	 */
	public function __construct( wpdb $db, WPRelay_Schema $schema ) {
		$this->db     = $db;
		$this->schema = $schema;
	}

	/**
	 * Hooks the exporter, the eraser and the policy text in.
	 */
	public function register_hooks(): void {
		add_filter( 'wp_privacy_personal_data_exporters', array( $this, 'register_exporter' ) );
		add_filter( 'wp_privacy_personal_data_erasers', array( $this, 'register_eraser' ) );
		add_action( 'admin_init', array( $this, 'add_policy_content' ) );
	}

	/**
	 * Adds the exporter.
	 *
	 * @param array $exporters Exporters.
	 * @return array
	 */
	public function register_exporter( $exporters ) {
		$exporters['wprelay'] = array(
			'exporter_friendly_name' => __( 'Webhook Relay', 'wprelay' ),
			'callback'               => array( $this, 'export' ),
		);
		return $exporters;
	}

	/**
	 * Adds the eraser.
	 *
	 * @param array $erasers Erasers.
	 * @return array
	 */
	public function register_eraser( $erasers ) {
		$erasers['wprelay'] = array(
			'eraser_friendly_name' => __( 'Webhook Relay', 'wprelay' ),
			'callback'             => array( $this, 'erase' ),
		);
		return $erasers;
	}

	/**
	 * Suggests the privacy-policy text (Settings → Privacy → policy guide).
	 */
	public function add_policy_content(): void {
		if ( ! function_exists( 'wp_add_privacy_policy_content' ) ) {
			return;
		}
		$text = '<p class="privacy-policy-tutorial">' . esc_html__( 'Webhook Relay sends events about this site to a relay service (the wprelay sidecar) that forwards them to the services configured there, and receives events from them. Describe those services here.', 'wprelay' ) . '</p>'
			. '<p><strong class="privacy-policy-tutorial">' . esc_html__( 'Suggested text:', 'wprelay' ) . '</strong> '
			. esc_html__( 'When you register, update your profile, comment, or place an order, this site sends a record of it (which can include your name, email address and what you wrote) to our event relay, which passes it to the services we use for customer management, email and analytics. We keep a copy of each record sent for 7 days, and records received from those services, and their answers about you, for 30 days. You can ask us for an export of this data, or for its erasure.', 'wprelay' )
			. '</p>';
		wp_add_privacy_policy_content( __( 'Webhook Relay', 'wprelay' ), wp_kses_post( $text ) );
	}

	/**
	 * Exports one page of what the plugin keeps about an email address.
	 *
	 * @param string $email Email address.
	 * @param int    $page  Page, from 1.
	 * @return array{data:array,done:bool}
	 */
	public function export( $email, $page = 1 ) {
		$email = (string) $email;
		$page  = max( 1, (int) $page );
		$user  = get_user_by( 'email', $email );
		$uid   = $user ? (int) $user->ID : 0;
		$data  = array();
		$more  = false;

		$rows = $this->outbox_rows( $email, $uid, $page );
		$more = $more || count( $rows ) === self::PAGE;
		foreach ( $rows as $row ) {
			$data[] = array(
				'group_id'    => 'wprelay-outbox',
				'group_label' => __( 'Events sent to the event relay', 'wprelay' ),
				'item_id'     => 'wprelay-outbox-' . $row['id'],
				'data'        => array(
					$this->pair( __( 'Event type', 'wprelay' ), $row['event_type'] ),
					$this->pair( __( 'About', 'wprelay' ), $row['object_ref'] ),
					$this->pair( __( 'Created', 'wprelay' ), $row['created_at'] . ' UTC' ),
					$this->pair( __( 'State', 'wprelay' ), $row['state'] ),
					$this->pair( __( 'Data', 'wprelay' ), $row['payload'] ),
				),
			);
		}
		$rows = $this->receipt_rows( $email, $uid, $page );
		$more = $more || count( $rows ) === self::PAGE;
		foreach ( $rows as $row ) {
			$data[] = array(
				'group_id'    => 'wprelay-receipts',
				'group_label' => __( 'Events received from the event relay', 'wprelay' ),
				'item_id'     => 'wprelay-receipt-' . $row['id'],
				'data'        => array(
					$this->pair( __( 'Event type', 'wprelay' ), $row['event_type'] ),
					$this->pair( __( 'Received', 'wprelay' ), $row['received_at'] . ' UTC' ),
					$this->pair( __( 'Status', 'wprelay' ), $row['status'] ),
					$this->pair( __( 'Data', 'wprelay' ), $row['event'] ),
				),
			);
		}
		$ids  = $this->result_ids( $email, $uid, $page );
		$more = $more || count( $ids ) === self::PAGE;
		foreach ( $ids as $id ) {
			$post   = get_post( $id );
			$data[] = array(
				'group_id'    => 'wprelay-results',
				'group_label' => __( 'Answers of connected services', 'wprelay' ),
				'item_id'     => 'wprelay-result-' . $id,
				'data'        => array(
					$this->pair( __( 'Title', 'wprelay' ), $post ? $post->post_title : '' ),
					$this->pair( __( 'Content', 'wprelay' ), $post ? $post->post_content : '' ),
					$this->pair( __( 'Date', 'wprelay' ), $post ? $post->post_date_gmt . ' UTC' : '' ),
					$this->pair( __( 'Data', 'wprelay' ), (string) get_post_meta( $id, WPRelay_Results_Controller::META_DATA, true ) ),
				),
			);
		}
		return array(
			'data' => $data,
			'done' => ! $more,
		);
	}

	/**
	 * Erases one batch of what the plugin keeps about an email address.
	 * Deleted rows no longer match, so every call starts again at the first
	 * page; rows kept on purpose (in flight) are skipped by marking.
	 *
	 * @param string $email Email address.
	 * @param int    $page  Page, from 1 (unused: see above).
	 * @return array{items_removed:bool,items_retained:bool,messages:string[],done:bool}
	 */
	public function erase( $email, $page = 1 ) {
		unset( $page );
		$email    = (string) $email;
		$user     = get_user_by( 'email', $email );
		$uid      = $user ? (int) $user->ID : 0;
		$removed  = 0;
		$retained = 0;
		$deleted  = 0;
		$blanked  = 0;

		$outbox = $this->schema->outbox();
		$rows   = $this->outbox_rows( $email, $uid, 1 );
		foreach ( $rows as $row ) {
			if ( 'pending' === $row['state'] ) {
				++$retained;
				continue;
			}
			$deleted += (int) $this->db->delete( $outbox, array( 'id' => (int) $row['id'] ), array( '%d' ) );
		}
		$receipts = $this->schema->receipts();
		$rrows    = $this->receipt_rows( $email, $uid, 1, true );
		foreach ( $rrows as $row ) {
			if ( in_array( $row['status'], array( 'stored', 'dispatching' ), true ) ) {
				++$retained;
				continue;
			}
			$blanked += (int) $this->db->update(
				$receipts,
				array(
					'event'      => '{"erased":true}',
					'last_error' => null,
				),
				array( 'id' => (int) $row['id'] ),
				array( '%s', '%s' ),
				array( '%d' )
			);
		}
		$removed = $deleted + $blanked;
		$ids     = $this->result_ids( $email, $uid, 1 );
		foreach ( $ids as $id ) {
			if ( wp_delete_post( $id, true ) ) {
				++$removed;
			}
		}
		$messages = array();
		if ( $retained > 0 ) {
			/* translators: %d: number of records */
			$messages[] = sprintf( __( 'Webhook Relay kept %d records that are still being sent or processed; erase again in a few minutes.', 'wprelay' ), $retained );
		}
		// Another batch while a full page was found and some of it erased
		// (retained rows match again; erased ones do not).
		$more = count( $ids ) === self::PAGE || ( count( $rows ) === self::PAGE && $deleted > 0 ) || ( count( $rrows ) === self::PAGE && $blanked > 0 );
		return array(
			'items_removed'  => $removed > 0,
			'items_retained' => $retained > 0,
			'messages'       => $messages,
			'done'           => ! $more,
		);
	}

	/**
	 * Returns outbox rows about a person.
	 *
	 * @param string $email Email address.
	 * @param int    $uid   User id (0: none).
	 * @param int    $page  Page, from 1.
	 * @return array[]
	 */
	private function outbox_rows( string $email, int $uid, int $page ): array {
		$table = $this->schema->outbox();
		$like  = '%' . $this->db->esc_like( $email ) . '%';
		$rows  = $this->db->get_results(
			$this->db->prepare(
				"SELECT id, event_type, object_ref, state, created_at, payload FROM {$table} WHERE ( %s <> '' AND payload LIKE %s ) OR object_ref = %s ORDER BY id LIMIT %d OFFSET %d",
				$email,
				$like,
				$uid > 0 ? 'user:' . $uid : '-',
				self::PAGE,
				( $page - 1 ) * self::PAGE
			),
			ARRAY_A
		);
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Returns receipts about a person.
	 *
	 * @param string $email    Email address.
	 * @param int    $uid      User id (0: none).
	 * @param int    $page     Page, from 1.
	 * @param bool   $unerased Only receipts whose body was not erased yet.
	 * @return array[]
	 */
	private function receipt_rows( string $email, int $uid, int $page, bool $unerased = false ): array {
		$table = $this->schema->receipts();
		$like  = '%' . $this->db->esc_like( $email ) . '%';
		$extra = $unerased ? " AND event <> '{\"erased\":true}'" : '';
		$rows  = $this->db->get_results(
			$this->db->prepare(
				"SELECT id, event_type, status, received_at, event FROM {$table} WHERE ( ( %s <> '' AND event LIKE %s ) OR result_ref = %s ){$extra} ORDER BY id LIMIT %d OFFSET %d",
				$email,
				$like,
				$uid > 0 ? 'user:' . $uid : '-',
				self::PAGE,
				( $page - 1 ) * self::PAGE
			),
			ARRAY_A
		);
		return is_array( $rows ) ? $rows : array();
	}

	/**
	 * Returns the ids of result posts about a person.
	 *
	 * @param string $email Email address.
	 * @param int    $uid   User id (0: none).
	 * @param int    $page  Page, from 1.
	 * @return int[]
	 */
	private function result_ids( string $email, int $uid, int $page ): array {
		$meta = array( 'relation' => 'OR' );
		if ( $uid > 0 ) {
			$meta[] = array(
				'key'   => WPRelay_Results_Controller::META_OBJECT_REF,
				'value' => 'user:' . $uid,
			);
		}
		if ( '' !== $email ) {
			$meta[] = array(
				'key'     => WPRelay_Results_Controller::META_DATA,
				'value'   => $email,
				'compare' => 'LIKE',
			);
		}
		if ( count( $meta ) < 2 ) {
			return array();
		}
		return array_map(
			'intval',
			get_posts(
				array(
					'post_type'      => WPRelay_Results_Controller::POST_TYPE,
					'post_status'    => 'any',
					'fields'         => 'ids',
					'posts_per_page' => self::PAGE,
					'paged'          => $page,
					'orderby'        => 'ID',
					'order'          => 'ASC',
					'meta_query'     => $meta, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_query -- a person's results are found by their meta; the exporter runs on request, in pages.
				)
			)
		);
	}

	/**
	 * Returns a name/value pair for the export.
	 *
	 * @param string $name  Name.
	 * @param string $value Value.
	 * @return array
	 */
	private function pair( string $name, string $value ): array {
		return array(
			'name'  => $name,
			'value' => $value,
		);
	}
}
