<?php
/**
 * WPRelay_Results_Controller: POST /wp-json/wprelay/v1/results.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Stores result events (an AI summary, a CRM answer: the sidecar's
 * `reply_to`) as private `wprelay_result` posts, one per event id, and links
 * each to the object it is about.
 *
 * `data` may carry title, summary (or content, or text: allowed post HTML),
 * and object_ref ("post:123", "user:7", "comment:9"); without
 * data.object_ref, the envelope's subject is used when it names such an
 * object (subject.id "post:123", or subject.type "post" and subject.id "123"). The link is post meta on both sides: `_wprelay_object_ref` on
 * the result, `_wprelay_result_id` on the origin object.
 */
class WPRelay_Results_Controller extends WPRelay_REST_Controller {

	/** The private post type results are stored as. */
	const POST_TYPE = 'wprelay_result';

	/** Meta keys. */
	const META_EVENT_ID   = '_wprelay_event_id';
	const META_EVENT_TYPE = '_wprelay_event_type';
	const META_CAUSATION  = '_wprelay_causation_id';
	const META_OBJECT_REF = '_wprelay_object_ref';
	const META_DATA       = '_wprelay_data';
	const META_RESULT_ID  = '_wprelay_result_id';

	/**
	 * The post type's own capability type (singular, plural): results hold
	 * CRM and AI answers, so only roles given these capabilities (the
	 * administrator, by default) may read or edit them.
	 */
	const CAPABILITY_TYPE = array( 'wprelay_result', 'wprelay_results' );

	/** Roles given the result capabilities on activation and upgrade. */
	const DEFAULT_ROLES = array( 'administrator' );

	/**
	 * Emitter (paused while storing, so that results do not echo back).
	 *
	 * @var WPRelay_Emitter
	 */
	private $emitter;

	/**
	 * Builds the controller.
	 *
	 * @param WPRelay_Request_Verifier $verifier Request verifier.
	 * @param WPRelay_Receipts         $receipts Receipts store.
	 * @param WPRelay_Rate_Limiter     $limiter  Rate limiter.
	 * @param WPRelay_Emitter          $emitter  Emitter.
	 */
	public function __construct( WPRelay_Request_Verifier $verifier, WPRelay_Receipts $receipts, WPRelay_Rate_Limiter $limiter, WPRelay_Emitter $emitter ) {
		parent::__construct( $verifier, $receipts, $limiter );
		$this->rest_base = 'results';
		$this->emitter   = $emitter;
	}

	/**
	 * Hooks the route and the post type in.
	 */
	public function register_hooks(): void {
		parent::register_hooks();
		add_action( 'init', array( $this, 'register_post_type' ) );
	}

	/**
	 * Registers the private wprelay_result post type.
	 */
	public function register_post_type(): void {
		register_post_type(
			self::POST_TYPE,
			array(
				'label'               => __( 'Relay results', 'wprelay' ),
				'public'              => false,
				'publicly_queryable'  => false,
				'exclude_from_search' => true,
				'show_ui'             => true,
				'show_in_menu'        => 'tools.php',
				'show_in_rest'        => false,
				'rewrite'             => false,
				'query_var'           => false,
				'supports'            => array( 'title', 'editor', 'custom-fields' ),
				'capability_type'     => self::CAPABILITY_TYPE,
				'capabilities'        => array( 'create_posts' => 'do_not_allow' ),
				'map_meta_cap'        => true,
			)
		);
	}

	/**
	 * Returns the primitive capabilities of the result post type (what
	 * map_meta_cap maps edit_post, read_post and delete_post to).
	 *
	 * @return string[]
	 */
	public static function primitive_caps(): array {
		list( $one, $many ) = self::CAPABILITY_TYPE;
		unset( $one );
		$caps = array();
		foreach ( array( 'edit_%s', 'edit_others_%s', 'edit_private_%s', 'edit_published_%s', 'read_private_%s', 'delete_%s', 'delete_others_%s', 'delete_private_%s', 'delete_published_%s', 'publish_%s' ) as $format ) {
			$caps[] = sprintf( $format, $many );
		}
		return $caps;
	}

	/**
	 * Gives the result capabilities to the roles that should have them
	 * (administrator by default; the `wprelay_result_roles` filter changes
	 * the list) in the current site.
	 */
	public static function grant_caps(): void {
		/**
		 * Filters the roles that may read and edit wprelay_result posts.
		 *
		 * @since 0.2.0
		 *
		 * @param string[] $roles Role names. Default array( 'administrator' ).
		 */
		$roles = (array) apply_filters( 'wprelay_result_roles', self::DEFAULT_ROLES );
		foreach ( $roles as $name ) {
			$role = get_role( (string) $name );
			if ( null === $role ) {
				continue;
			}
			foreach ( self::primitive_caps() as $cap ) {
				if ( ! $role->has_cap( $cap ) ) {
					$role->add_cap( $cap );
				}
			}
		}
	}

	/**
	 * Removes the result capabilities from every role of the current site
	 * (uninstall).
	 */
	public static function revoke_caps(): void {
		foreach ( wp_roles()->role_objects as $role ) {
			foreach ( self::primitive_caps() as $cap ) {
				$role->remove_cap( $cap );
			}
		}
	}

	/**
	 * The result fields `data` may carry.
	 *
	 * @return array
	 */
	protected function data_schema(): array {
		return array(
			'description'          => __( 'The result: title, summary or content, object_ref.', 'wprelay' ),
			'type'                 => 'object',
			'required'             => true,
			'context'              => array( 'edit' ),
			'additionalProperties' => true,
			'properties'           => array(
				'title'      => array(
					'type'      => 'string',
					'maxLength' => 500,
				),
				'object_ref' => array(
					'type'      => 'string',
					'maxLength' => 191,
				),
			),
		);
	}

	/**
	 * Upserts the result post.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public function create_item( $request ) {
		$event   = $this->envelope( $request );
		$receipt = $this->store_receipt( $request, $event, 'applying' );
		if ( is_wp_error( $receipt ) ) {
			return $receipt;
		}
		if ( null === $receipt ) {
			return $this->duplicate( (string) $request->get_header( 'idempotency_key' ) );
		}
		$result = $this->emitter->quietly(
			function () use ( $event ) {
				return $this->upsert( $event );
			}
		);
		if ( is_wp_error( $result ) ) {
			$this->receipts->delete( $receipt );
			return new WP_Error( 'wprelay_result_failed', $result->get_error_message(), array( 'status' => 500 ) );
		}
		$this->receipts->set_result_ref( $receipt, 'post:' . $result['id'] );
		$this->receipts->transition( $receipt, 'applying', 'applied' );
		return new WP_REST_Response(
			array(
				'status'     => 'applied',
				'duplicate'  => false,
				'post_id'    => $result['id'],
				'created'    => $result['created'],
				'object_ref' => $result['object_ref'],
			),
			200
		);
	}

	/**
	 * Creates or updates the result post of an event.
	 *
	 * @param array $event The envelope.
	 * @return array|WP_Error id, created, object_ref.
	 */
	private function upsert( array $event ) {
		$data    = $event['data'];
		$post_id = $this->find( $event['id'] );
		$title   = isset( $data['title'] ) && is_scalar( $data['title'] ) ? sanitize_text_field( (string) $data['title'] ) : '';
		if ( '' === $title ) {
			$title = sanitize_text_field( $event['type'] ?? 'result' );
		}
		$content = '';
		foreach ( array( 'summary', 'content', 'text' ) as $field ) {
			if ( isset( $data[ $field ] ) && is_scalar( $data[ $field ] ) ) {
				$content = wp_kses_post( (string) $data[ $field ] );
				break;
			}
		}
		$ref  = $this->object_ref( $event );
		$post = array(
			'post_type'    => self::POST_TYPE,
			'post_status'  => 'private',
			'post_title'   => $title,
			'post_content' => $content,
		);
		if ( $post_id ) {
			$post['ID'] = $post_id;
			$saved      = wp_update_post( wp_slash( $post ), true );
		} else {
			$saved = wp_insert_post( wp_slash( $post ), true );
		}
		if ( is_wp_error( $saved ) ) {
			return $saved;
		}
		$saved = (int) $saved;
		update_post_meta( $saved, self::META_EVENT_ID, $event['id'] );
		update_post_meta( $saved, self::META_EVENT_TYPE, $event['type'] ?? '' );
		update_post_meta( $saved, self::META_CAUSATION, $event['causation_id'] ?? '' );
		update_post_meta( $saved, self::META_DATA, wp_slash( (string) wp_json_encode( $data, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ) ) );
		if ( '' !== $ref ) {
			update_post_meta( $saved, self::META_OBJECT_REF, $ref );
			$this->link_origin( $ref, $saved );
		}
		return array(
			'id'         => $saved,
			'created'    => ! $post_id,
			'object_ref' => $ref,
		);
	}

	/**
	 * Returns the result post of an event id, or 0.
	 *
	 * @param string $event_id Event id.
	 * @return int
	 */
	private function find( string $event_id ): int {
		$ids = get_posts(
			array(
				'post_type'        => self::POST_TYPE,
				'post_status'      => 'any',
				'meta_key'         => self::META_EVENT_ID, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_key -- one indexed meta_key lookup for a single object.
				'meta_value'       => $event_id, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_value -- paired with the meta_key above.
				'fields'           => 'ids',
				'posts_per_page'   => 1,
				'suppress_filters' => true,
				'no_found_rows'    => true,
			)
		);
		return $ids ? (int) $ids[0] : 0;
	}

	/**
	 * Returns the object a result is about ("post:123"), or '' when it
	 * names none that exists here.
	 *
	 * @param array $event The envelope.
	 * @return string
	 */
	private function object_ref( array $event ): string {
		$candidates = array();
		if ( isset( $event['data']['object_ref'] ) && is_string( $event['data']['object_ref'] ) ) {
			$candidates[] = $event['data']['object_ref'];
		}
		if ( isset( $event['subject']['id'] ) ) {
			// The sidecar normalizes "post:123" to a subject of type post and id 123.
			$candidates[] = (string) $event['subject']['id'];
			if ( isset( $event['subject']['type'] ) ) {
				$candidates[] = $event['subject']['type'] . ':' . $event['subject']['id'];
			}
		}
		foreach ( $candidates as $ref ) {
			if ( ! preg_match( '/^(post|user|comment):([1-9][0-9]{0,19})$/', $ref, $m ) ) {
				continue;
			}
			$id = (int) $m[2];
			if ( 'post' === $m[1] && get_post( $id ) && self::POST_TYPE !== get_post_type( $id ) ) {
				return $ref;
			}
			if ( 'user' === $m[1] && get_userdata( $id ) ) {
				return $ref;
			}
			if ( 'comment' === $m[1] && get_comment( $id ) ) {
				return $ref;
			}
		}
		return '';
	}

	/**
	 * Records the result on its origin object.
	 *
	 * @param string $ref       "post:123", "user:7" or "comment:9".
	 * @param int    $result_id Result post id.
	 */
	private function link_origin( string $ref, int $result_id ): void {
		list( $kind, $id ) = explode( ':', $ref, 2 );
		update_metadata( $kind, (int) $id, self::META_RESULT_ID, $result_id );
	}
}
