<?php
/**
 * WPRelay_REST_Controller: what the three sidecar routes share.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Base of the routes the sidecar delivers to (POST wprelay/v1/events,
 * /user-sync, /results). Each request is verified (JWT + Standard Webhooks
 * signature), then rate limited, in permission_callback, its body is the
 * sidecar's canonical envelope described by `get_item_schema()`, and its
 * Idempotency-Key is recorded in the receipts table, whose UNIQUE index
 * turns a repeated delivery into 200 {"duplicate":true}.
 *
 * WordPress validates `args` before permission callbacks run; a
 * `rest_request_before_callbacks` filter verifies the caller first, so that
 * an unauthenticated request always gets 401 and learns nothing about the
 * schema, and turns schema errors into 422 wprelay_invalid_event.
 */
abstract class WPRelay_REST_Controller extends WP_REST_Controller {

	/**
	 * Request verifier.
	 *
	 * @var WPRelay_Request_Verifier
	 */
	protected $verifier;

	/**
	 * Receipts store.
	 *
	 * @var WPRelay_Receipts
	 */
	protected $receipts;

	/**
	 * Rate limiter.
	 *
	 * @var WPRelay_Rate_Limiter
	 */
	protected $limiter;

	/**
	 * Builds the controller.
	 *
	 * @param WPRelay_Request_Verifier $verifier Request verifier.
	 * @param WPRelay_Receipts         $receipts Receipts store.
	 * @param WPRelay_Rate_Limiter     $limiter  Rate limiter.
	 */
	public function __construct( WPRelay_Request_Verifier $verifier, WPRelay_Receipts $receipts, WPRelay_Rate_Limiter $limiter ) {
		$this->namespace = 'wprelay/v1';
		$this->verifier  = $verifier;
		$this->receipts  = $receipts;
		$this->limiter   = $limiter;
	}

	/**
	 * Hooks the route and the auth-first filter in.
	 */
	public function register_hooks(): void {
		add_action( 'rest_api_init', array( $this, 'register_routes' ) );
		add_filter( 'rest_request_before_callbacks', array( $this, 'verify_before_validation_errors' ), 10, 3 );
		add_filter( 'rest_post_dispatch', array( $this, 'add_retry_after' ), 10, 3 );
	}

	/**
	 * Registers POST /wprelay/v1/{rest_base}.
	 */
	public function register_routes(): void {
		register_rest_route(
			$this->namespace,
			'/' . $this->rest_base,
			array(
				array(
					'methods'             => WP_REST_Server::CREATABLE,
					'callback'            => array( $this, 'create_item' ),
					'permission_callback' => array( $this, 'create_item_permissions_check' ),
					'args'                => $this->get_endpoint_args_for_item_schema( WP_REST_Server::CREATABLE ),
				),
				'schema' => array( $this, 'get_public_item_schema' ),
			)
		);
	}

	/**
	 * Verifies the sidecar's token and signature, then counts the request
	 * against the route's rate limit.
	 *
	 * A request that does not authenticate gets one generic 401 (429 once
	 * its address is over its failure budget, with a persistent object
	 * cache); which check failed goes to the debug log (WP_DEBUG), not to
	 * the caller.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return true|WP_Error
	 */
	public function create_item_permissions_check( $request ) {
		$allowed = $this->verifier->verify( $request );
		if ( is_wp_error( $allowed ) ) {
			$data = $allowed->get_error_data();
			if ( ! is_array( $data ) || 401 !== ( $data['status'] ?? 0 ) ) {
				return $allowed; // 503 wprelay_not_configured: for the operator, says which constant to set.
			}
			// Counted only after verification: a client that authenticates is
			// never refused because of another's failures (one proxy address).
			$this->limiter->fail( $this->rest_base );
			$wait = $this->limiter->failing( $this->rest_base );
			if ( $wait > 0 ) {
				return $this->rate_limited( $wait );
			}
			if ( defined( 'WP_DEBUG' ) && WP_DEBUG ) {
				error_log( sprintf( 'wprelay: 401 on /%s/%s from %s: %s (%s)', $this->namespace, $this->rest_base, $this->limiter->client_ip( $this->rest_base ), $allowed->get_error_message(), $allowed->get_error_code() ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			}
			return new WP_Error( 'wprelay_unauthorized', __( 'The request could not be authenticated.', 'wprelay' ), array( 'status' => 401 ) );
		}
		$wait = $this->limiter->hit( $this->rest_base );
		return $wait > 0 ? $this->rate_limited( $wait ) : true;
	}

	/**
	 * Builds a 429 wprelay_rate_limited error.
	 *
	 * @param int $wait Seconds until the window ends.
	 * @return WP_Error
	 */
	private function rate_limited( int $wait ): WP_Error {
		return new WP_Error(
			'wprelay_rate_limited',
			__( 'Too many requests; retry later.', 'wprelay' ),
			array(
				'status'      => 429,
				'retry_after' => $wait,
			)
		);
	}

	/**
	 * On this route, answers a request that failed WordPress's own argument
	 * validation with the verification error when it is not authentic, else
	 * with 422 wprelay_invalid_event.
	 *
	 * @param WP_REST_Response|WP_Error|mixed $response Result so far.
	 * @param array                           $handler  Route handler.
	 * @param WP_REST_Request                 $request  The request.
	 * @return WP_REST_Response|WP_Error|mixed
	 */
	public function verify_before_validation_errors( $response, $handler, $request ) {
		if ( ! is_wp_error( $response ) || '/' . $this->namespace . '/' . $this->rest_base !== $request->get_route() ) {
			return $response;
		}
		$allowed = $this->create_item_permissions_check( $request );
		if ( is_wp_error( $allowed ) ) {
			return $allowed;
		}
		if ( in_array( $response->get_error_code(), array( 'rest_invalid_param', 'rest_missing_callback_param', 'rest_invalid_json' ), true ) ) {
			$data = $response->get_error_data();
			return $this->invalid_event( $response->get_error_message(), is_array( $data ) && isset( $data['params'] ) ? $data['params'] : array() );
		}
		return $response;
	}

	/**
	 * Adds Retry-After to this route's 429 answers.
	 *
	 * @param WP_HTTP_Response $result  Response.
	 * @param WP_REST_Server   $server  Server.
	 * @param WP_REST_Request  $request Request.
	 * @return WP_HTTP_Response
	 */
	public function add_retry_after( $result, $server, $request ) {
		if ( $result instanceof WP_HTTP_Response && 429 === $result->get_status() && '/' . $this->namespace . '/' . $this->rest_base === $request->get_route() ) {
			$data = $result->get_data();
			$wait = is_array( $data ) && isset( $data['data']['retry_after'] ) ? (int) $data['data']['retry_after'] : 60;
			$result->header( 'Retry-After', (string) $wait );
		}
		return $result;
	}

	/**
	 * The envelope schema every route shares; subclasses narrow `data`.
	 *
	 * @return array
	 */
	public function get_item_schema() {
		if ( $this->schema ) {
			return $this->add_additional_fields_schema( $this->schema );
		}
		$string       = static function ( string $description, int $max, bool $required = false ) {
			return array(
				'description' => $description,
				'type'        => 'string',
				'maxLength'   => $max,
				'required'    => $required,
				'context'     => array( 'edit' ),
			);
		};
		$this->schema = array(
			'$schema'              => 'http://json-schema.org/draft-04/schema#',
			'title'                => 'wprelay-' . $this->rest_base,
			'type'                 => 'object',
			'additionalProperties' => true,
			'properties'           => array(
				'id'              => $string( __( 'The sidecar\'s event id (UUIDv7).', 'wprelay' ), 64, true ),
				'source'          => $string( __( 'Source name.', 'wprelay' ), 100 ),
				'tenant'          => $string( __( 'Tenant name.', 'wprelay' ), 100 ),
				'type'            => array_merge( $string( __( 'Event type, e.g. invoice.paid.', 'wprelay' ), 150, true ), array( 'pattern' => '^[A-Za-z0-9_][A-Za-z0-9_./:-]*$' ) ),
				'idempotency_key' => $string( __( 'The sidecar\'s dedupe key.', 'wprelay' ), 400 ),
				'occurred_at'     => array_merge( $string( __( 'When it happened (RFC 3339).', 'wprelay' ), 64 ), array( 'format' => 'date-time' ) ),
				'received_at'     => array_merge( $string( __( 'When the sidecar received it (RFC 3339).', 'wprelay' ), 64 ), array( 'format' => 'date-time' ) ),
				'causation_id'    => $string( __( 'The event this one answers (result events).', 'wprelay' ), 64 ),
				'actor'           => array(
					'type'    => 'object',
					'context' => array( 'edit' ),
				),
				'subject'         => array(
					'type'    => 'object',
					'context' => array( 'edit' ),
				),
				'action'          => array(
					'type'    => 'object',
					'context' => array( 'edit' ),
				),
				'data'            => $this->data_schema(),
			),
		);
		return $this->add_additional_fields_schema( $this->schema );
	}

	/**
	 * The schema of the envelope's `data`.
	 *
	 * @return array
	 */
	protected function data_schema(): array {
		return array(
			'description'          => __( 'The provider\'s object.', 'wprelay' ),
			'type'                 => 'object',
			'additionalProperties' => true,
			'required'             => true,
			'context'              => array( 'edit' ),
		);
	}

	/**
	 * Returns the envelope of a request: its validated top-level fields, with
	 * `data` as sent.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return array
	 */
	protected function envelope( WP_REST_Request $request ): array {
		$json  = $request->get_json_params();
		$event = array();
		foreach ( array( 'id', 'source', 'tenant', 'type', 'idempotency_key', 'occurred_at', 'received_at', 'causation_id' ) as $field ) {
			if ( isset( $json[ $field ] ) ) {
				$event[ $field ] = sanitize_text_field( (string) $json[ $field ] );
			}
		}
		foreach ( array( 'actor', 'subject', 'action' ) as $field ) {
			if ( isset( $json[ $field ] ) && is_array( $json[ $field ] ) ) {
				$event[ $field ] = array_map(
					static function ( $v ) {
						return is_scalar( $v ) ? sanitize_text_field( (string) $v ) : '';
					},
					$json[ $field ]
				);
			}
		}
		$event['data'] = isset( $json['data'] ) && is_array( $json['data'] ) ? $json['data'] : array();
		return $event;
	}

	/**
	 * Records a delivery's receipt.
	 *
	 * @param WP_REST_Request $request The request.
	 * @param array           $event   Its envelope.
	 * @param string          $status  Status of the new receipt.
	 * @param string          $subject Subject key that orders dispatch ('' for none).
	 * @return int|null|WP_Error The receipt id; null for a duplicate.
	 */
	protected function store_receipt( WP_REST_Request $request, array $event, string $status, string $subject = '' ) {
		try {
			return $this->receipts->insert_if_new(
				array(
					'idempotency_key' => (string) $request->get_header( 'idempotency_key' ),
					'route'           => $this->rest_base,
					'event_id'        => $event['id'] ?? '',
					'event_type'      => $event['type'] ?? '',
					'event'           => (string) wp_json_encode( $event, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE ),
					'trace_id'        => $this->trace_id( $request ),
					'status'          => $status,
					'subject_key'     => $subject,
				)
			);
		} catch ( RuntimeException $e ) {
			error_log( 'wprelay: ' . $e->getMessage() ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log
			return new WP_Error( 'wprelay_unavailable', __( 'The event could not be stored; retry later.', 'wprelay' ), array( 'status' => 503 ) );
		}
	}

	/**
	 * Returns the trace id of a request: from traceparent, else X-Request-Id.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return string
	 */
	protected function trace_id( WP_REST_Request $request ): string {
		$tp = (string) $request->get_header( 'traceparent' );
		if ( preg_match( '/^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/', $tp, $m ) ) {
			return $m[1];
		}
		return substr( preg_replace( '/[^A-Za-z0-9._-]/', '', (string) $request->get_header( 'x_request_id' ) ), 0, 64 );
	}

	/**
	 * The answer to a repeated delivery.
	 *
	 * @param string $key Idempotency key.
	 * @return WP_REST_Response
	 */
	protected function duplicate( string $key ): WP_REST_Response {
		$row = $this->receipts->find( $key );
		return new WP_REST_Response(
			array(
				'duplicate' => true,
				'status'    => $row ? $row['status'] : 'stored',
			),
			200
		);
	}

	/**
	 * Builds a 422 wprelay_invalid_event error.
	 *
	 * @param string $message What is wrong.
	 * @param array  $params  Field => problem.
	 * @return WP_Error
	 */
	protected function invalid_event( string $message, array $params = array() ): WP_Error {
		return new WP_Error(
			'wprelay_invalid_event',
			$message,
			array(
				'status' => 422,
				'params' => $params,
			)
		);
	}
}
