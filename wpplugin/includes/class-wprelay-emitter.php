<?php
/**
 * WPRelay_Emitter: turns WordPress changes into signed events.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Emits events on WordPress hooks (post published/updated, user
 * registered/updated, comment posted, WooCommerce order paid/status changed)
 * and through wprelay_emit().
 *
 * Emitting writes one outbox row (the only work done in the triggering
 * request) and remembers its id; the row is sent at shutdown, after
 * fastcgi_finish_request() has flushed the response where the server
 * supports it, so that the page the user sees never waits on the sidecar.
 * A row that could not be sent is retried from WP-Cron.
 */
class WPRelay_Emitter {

	/** Event types: word.word or word.word.word of [a-z0-9_] (DESIGN.md). */
	const TYPE_PATTERN = '/^[a-z0-9_]+\.[a-z0-9_]+(\.[a-z0-9_]+)?$/';

	/** Longest object_ref (DESIGN.md). */
	const MAX_REF = 191;

	/** Most rows sent at shutdown; the rest wait for WP-Cron. */
	const MAX_AT_SHUTDOWN = 10;

	/**
	 * Settings.
	 *
	 * @var WPRelay_Config
	 */
	private $config;

	/**
	 * Token and signature code (UUIDs).
	 *
	 * @var WPRelay_Crypto
	 */
	private $crypto;

	/**
	 * The outbox.
	 *
	 * @var WPRelay_Outbox
	 */
	private $outbox;

	/**
	 * The sender.
	 *
	 * @var WPRelay_Sender
	 */
	private $sender;

	/**
	 * Outbox row ids written in this request, sent at shutdown.
	 *
	 * @var int[]
	 */
	private $pending = array();

	/**
	 * Events already emitted in this request ("type|ref"), so that a post
	 * saved twice in one request emits once.
	 *
	 * @var array<string,bool>
	 */
	private $seen = array();

	/**
	 * While above 0, WordPress hooks emit nothing (changes the sidecar asked
	 * for, so that they do not echo back).
	 *
	 * @var int
	 */
	private $paused = 0;

	/**
	 * Builds the emitter.
	 *
	 * @param WPRelay_Config $config Settings.
	 * @param WPRelay_Crypto $crypto UUIDs.
	 * @param WPRelay_Outbox $outbox The outbox.
	 * @param WPRelay_Sender $sender The sender.
	 */
	public function __construct( WPRelay_Config $config, WPRelay_Crypto $crypto, WPRelay_Outbox $outbox, WPRelay_Sender $sender ) {
		$this->config = $config;
		$this->crypto = $crypto;
		$this->outbox = $outbox;
		$this->sender = $sender;
	}

	/**
	 * Hooks the emitting handlers in.
	 */
	public function register_hooks(): void {
		add_action( 'transition_post_status', array( $this, 'on_post_status' ), 10, 3 );
		add_action( 'user_register', array( $this, 'on_user_register' ), 10, 1 );
		add_action( 'profile_update', array( $this, 'on_profile_update' ), 10, 1 );
		add_action( 'comment_post', array( $this, 'on_comment_post' ), 10, 2 );
		add_action( 'plugins_loaded', array( $this, 'register_woocommerce_hooks' ), 20 );
	}

	/**
	 * Hooks the WooCommerce handlers in when WooCommerce is active.
	 */
	public function register_woocommerce_hooks(): void {
		if ( ! class_exists( 'WooCommerce' ) ) {
			return;
		}
		add_action( 'woocommerce_payment_complete', array( $this, 'on_order_paid' ), 10, 1 );
		add_action( 'woocommerce_order_status_changed', array( $this, 'on_order_status_changed' ), 10, 3 );
	}

	/**
	 * Emits an event: writes an outbox row and sends it after the response.
	 *
	 * @param string $type       Event type, e.g. "post.published".
	 * @param string $object_ref What it is about, e.g. "post:123" (at most 191 characters).
	 * @param array  $data       Event data (a JSON object).
	 * @return string|WP_Error The idempotency key (UUIDv4), or why nothing was emitted.
	 */
	public function emit( string $type, string $object_ref, array $data = array() ) {
		if ( ! preg_match( self::TYPE_PATTERN, $type ) ) {
			return new WP_Error( 'wprelay_invalid_event', __( 'Event type must look like "word.word" or "word.word.word" (a-z, 0-9, _).', 'wprelay' ) );
		}
		if ( mb_strlen( $object_ref ) > self::MAX_REF ) {
			return new WP_Error( 'wprelay_invalid_event', __( 'object_ref is longer than 191 characters.', 'wprelay' ) );
		}
		if ( '' === $this->config->hook_url() ) {
			return new WP_Error( 'wprelay_not_configured', __( 'WPRELAY_SIDECAR_URL and WPRELAY_SOURCE are not set.', 'wprelay' ) );
		}
		/**
		 * Filters the data of an event before it is queued.
		 *
		 * @since 0.1.0
		 *
		 * @param array  $data       Event data.
		 * @param string $type       Event type.
		 * @param string $object_ref Object reference.
		 */
		$data = apply_filters( 'wprelay_event_data', $data, $type, $object_ref );
		/**
		 * Filters whether an event is emitted at all.
		 *
		 * @since 0.1.0
		 *
		 * @param bool   $emit       Default true.
		 * @param string $type       Event type.
		 * @param string $object_ref Object reference.
		 * @param array  $data       Event data.
		 */
		if ( ! apply_filters( 'wprelay_should_emit', true, $type, $object_ref, $data ) ) {
			return new WP_Error( 'wprelay_skipped', __( 'A wprelay_should_emit filter skipped the event.', 'wprelay' ) );
		}
		$key  = $this->crypto->uuid4();
		$body = wp_json_encode(
			array(
				'event_type'      => $type,
				'object_ref'      => $object_ref,
				'idempotency_key' => $key,
				'occurred_at'     => gmdate( 'Y-m-d\TH:i:s\Z' ),
				'data'            => empty( $data ) ? new stdClass() : (object) $data,
			),
			JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
		);
		if ( false === $body ) {
			return new WP_Error( 'wprelay_invalid_event', __( 'Event data cannot be encoded as JSON.', 'wprelay' ) );
		}
		$id = $this->outbox->add( $key, $type, $object_ref, $body );
		if ( 0 === $id ) {
			return new WP_Error( 'wprelay_outbox_failed', __( 'The event could not be written to the outbox.', 'wprelay' ) );
		}
		if ( empty( $this->pending ) ) {
			add_action( 'shutdown', array( $this, 'send_pending' ), PHP_INT_MAX );
		}
		$this->pending[] = $id;
		return $key;
	}

	/**
	 * Sends the rows written in this request, after the response is flushed
	 * where the server can (PHP-FPM, LiteSpeed). Under other SAPIs the
	 * client waits for this, bounded by the sender's short timeout.
	 */
	public function send_pending(): void {
		$ids           = array_slice( $this->pending, 0, self::MAX_AT_SHUTDOWN );
		$this->pending = array();
		if ( empty( $ids ) ) {
			return;
		}
		if ( function_exists( 'fastcgi_finish_request' ) ) {
			fastcgi_finish_request();
		} elseif ( function_exists( 'litespeed_finish_request' ) ) {
			litespeed_finish_request();
		}
		$this->sender->send( $ids );
	}

	/**
	 * Runs $fn without emitting on WordPress hooks (for changes the sidecar
	 * asked for).
	 *
	 * @param callable $work Work.
	 * @return mixed What $work returned.
	 */
	public function quietly( callable $work ) {
		++$this->paused;
		try {
			return $work();
		} finally {
			--$this->paused;
		}
	}

	/**
	 * Emits post.published or post.updated.
	 *
	 * @param string  $new_status New status.
	 * @param string  $old_status Old status.
	 * @param WP_Post $post       The post.
	 */
	public function on_post_status( $new_status, $old_status, $post ): void {
		if ( 'publish' !== $new_status || ! $post instanceof WP_Post || wp_is_post_revision( $post ) || wp_is_post_autosave( $post ) ) {
			return;
		}
		if ( ( defined( 'DOING_AUTOSAVE' ) && DOING_AUTOSAVE ) || ! in_array( $post->post_type, $this->post_types(), true ) ) {
			return;
		}
		$type = 'publish' === $old_status ? 'post.updated' : 'post.published';
		$this->emit_once(
			$type,
			'post:' . $post->ID,
			function () use ( $post, $old_status ) {
				return array(
					'id'           => (int) $post->ID,
					'post_type'    => $post->post_type,
					'status'       => $post->post_status,
					'old_status'   => $old_status,
					'title'        => $post->post_title,
					'slug'         => $post->post_name,
					'link'         => get_permalink( $post ),
					'author'       => (int) $post->post_author,
					'date_gmt'     => mysql_to_rfc3339( $post->post_date_gmt ),
					'modified_gmt' => mysql_to_rfc3339( $post->post_modified_gmt ),
					'excerpt'      => $post->post_excerpt,
					'content'      => $post->post_content,
				);
			}
		);
	}

	/**
	 * Emits user.registered.
	 *
	 * @param int $user_id User id.
	 */
	public function on_user_register( $user_id ): void {
		$this->emit_user( 'user.registered', (int) $user_id );
	}

	/**
	 * Emits user.updated.
	 *
	 * @param int $user_id User id.
	 */
	public function on_profile_update( $user_id ): void {
		$this->emit_user( 'user.updated', (int) $user_id );
	}

	/**
	 * Emits comment.posted for an approved comment.
	 *
	 * @param int        $comment_id Comment id.
	 * @param int|string $approved   1, 0 or 'spam'.
	 */
	public function on_comment_post( $comment_id, $approved ): void {
		if ( 1 !== (int) $approved || 'spam' === $approved ) {
			return;
		}
		$comment = get_comment( $comment_id );
		if ( ! $comment ) {
			return;
		}
		$this->emit_once(
			'comment.posted',
			'comment:' . $comment->comment_ID,
			function () use ( $comment ) {
				return array(
					'id'       => (int) $comment->comment_ID,
					'post_id'  => (int) $comment->comment_post_ID,
					'author'   => $comment->comment_author,
					'user_id'  => (int) $comment->user_id,
					'content'  => $comment->comment_content,
					'date_gmt' => mysql_to_rfc3339( $comment->comment_date_gmt ),
					'type'     => $comment->comment_type,
				);
			}
		);
	}

	/**
	 * Emits order.paid (WooCommerce).
	 *
	 * @param int $order_id Order id.
	 */
	public function on_order_paid( $order_id ): void {
		$this->emit_order( 'order.paid', (int) $order_id, array() );
	}

	/**
	 * Emits order.status_changed (WooCommerce).
	 *
	 * @param int    $order_id Order id.
	 * @param string $from     Old status.
	 * @param string $to       New status.
	 */
	public function on_order_status_changed( $order_id, $from, $to ): void {
		$this->emit_order(
			'order.status_changed',
			(int) $order_id,
			array(
				'from' => (string) $from,
				'to'   => (string) $to,
			)
		);
	}

	/**
	 * Emits a user event.
	 *
	 * @param string $type    Event type.
	 * @param int    $user_id User id.
	 */
	private function emit_user( string $type, int $user_id ): void {
		$user = get_userdata( $user_id );
		if ( ! $user ) {
			return;
		}
		$this->emit_once(
			$type,
			'user:' . $user_id,
			function () use ( $user ) {
				return array(
					'id'           => (int) $user->ID,
					'login'        => $user->user_login,
					'email'        => $user->user_email,
					'display_name' => $user->display_name,
					'first_name'   => $user->first_name,
					'last_name'    => $user->last_name,
					'roles'        => array_values( (array) $user->roles ),
					'registered'   => mysql_to_rfc3339( $user->user_registered ),
				);
			}
		);
	}

	/**
	 * Emits a WooCommerce order event.
	 *
	 * @param string $type     Event type.
	 * @param int    $order_id Order id.
	 * @param array  $extra    Extra data.
	 */
	private function emit_order( string $type, int $order_id, array $extra ): void {
		if ( ! function_exists( 'wc_get_order' ) ) {
			return;
		}
		$order = wc_get_order( $order_id );
		if ( ! $order ) {
			return;
		}
		$this->emit_once(
			$type,
			'order:' . $order_id,
			function () use ( $order, $extra ) {
				return array_merge(
					array(
						'id'          => (int) $order->get_id(),
						'number'      => (string) $order->get_order_number(),
						'status'      => (string) $order->get_status(),
						'total'       => (string) $order->get_total(),
						'currency'    => (string) $order->get_currency(),
						'customer_id' => (int) $order->get_customer_id(),
						'email'       => (string) $order->get_billing_email(),
					),
					$extra
				);
			}
		);
	}

	/**
	 * Emits an event once per request for one (type, object), unless paused.
	 *
	 * @param string   $type Event type.
	 * @param string   $ref  Object reference.
	 * @param callable $data Builds the data (only when the event is emitted).
	 */
	private function emit_once( string $type, string $ref, callable $data ): void {
		if ( $this->paused > 0 || wp_installing() || isset( $this->seen[ $type . '|' . $ref ] ) ) {
			return;
		}
		$this->seen[ $type . '|' . $ref ] = true;
		$result                           = $this->emit( $type, $ref, $data() );
		if ( is_wp_error( $result ) && ! in_array( $result->get_error_code(), array( 'wprelay_not_configured', 'wprelay_skipped' ), true ) ) {
			error_log( sprintf( 'wprelay: could not emit %s for %s: %s', $type, $ref, $result->get_error_message() ) ); // phpcs:ignore WordPress.PHP.DevelopmentFunctions.error_log_error_log -- operators need a trace of events that could not be emitted; no secret or payload is logged.
		}
	}

	/**
	 * Returns the post types whose publishing emits events.
	 *
	 * @return string[]
	 */
	private function post_types(): array {
		$types = array_values( array_diff( get_post_types( array( 'public' => true ) ), array( 'attachment' ) ) );
		/**
		 * Filters the post types that emit post.published and post.updated.
		 *
		 * @since 0.1.0
		 *
		 * @param string[] $types Default: public post types except attachment.
		 */
		return (array) apply_filters( 'wprelay_emit_post_types', $types );
	}
}
