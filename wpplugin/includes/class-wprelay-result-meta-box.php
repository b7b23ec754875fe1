<?php
/**
 * WPRelay_Result_Meta_Box: the results about a post, on its edit screen.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Shows, in a side meta box of the post edit screen, the result posts
 * (`wprelay_result`, stored by POST /results) linked to the post: an AI
 * summary, a CRM answer. The box appears once the post has a result; it
 * shows the newest few, each with its title, its content and where it
 * came from.
 */
class WPRelay_Result_Meta_Box {

	/** Meta box id. */
	const ID = 'wprelay-results';

	/** How many results the box shows, newest first. */
	const LIMIT = 5;

	/**
	 * Hooks the box in.
	 */
	public function register_hooks(): void {
		add_action( 'add_meta_boxes', array( $this, 'add' ), 10, 2 );
	}

	/**
	 * Adds the box on the edit screen of a post that has results.
	 *
	 * @param string       $post_type Post type.
	 * @param WP_Post|null $post      The post being edited.
	 */
	public function add( $post_type, $post = null ): void {
		$cap = 'read_private_' . WPRelay_Results_Controller::CAPABILITY_TYPE[1];
		if ( ! $post instanceof WP_Post || WPRelay_Results_Controller::POST_TYPE === $post_type || ! current_user_can( $cap ) || ! $this->results( $post->ID, 1 ) ) {
			return;
		}
		add_meta_box( self::ID, __( 'Webhook Relay results', 'wprelay' ), array( $this, 'render' ), null, 'side', 'default' );
	}

	/**
	 * Returns the result posts linked to a post, newest first.
	 *
	 * @param int $post_id Post id.
	 * @param int $limit   How many at most.
	 * @return WP_Post[]
	 */
	public function results( int $post_id, int $limit = self::LIMIT ): array {
		return get_posts(
			array(
				'post_type'        => WPRelay_Results_Controller::POST_TYPE,
				'post_status'      => 'private',
				'meta_key'         => WPRelay_Results_Controller::META_OBJECT_REF, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_key -- one indexed meta_key lookup for a single object.
				'meta_value'       => 'post:' . $post_id, // phpcs:ignore WordPress.DB.SlowDBQuery.slow_db_query_meta_value -- paired with the meta_key above.
				'orderby'          => 'date',
				'order'            => 'DESC',
				'posts_per_page'   => $limit,
				'suppress_filters' => true,
				'no_found_rows'    => true,
			)
		);
	}

	/**
	 * Prints the box.
	 *
	 * @param WP_Post $post The post being edited.
	 */
	public function render( $post ): void {
		$results = $this->results( (int) $post->ID );
		if ( ! $results ) {
			echo '<p>' . esc_html__( 'No results yet.', 'wprelay' ) . '</p>';
			return;
		}
		echo '<div class="wprelay-results">';
		foreach ( $results as $result ) {
			$type = (string) get_post_meta( $result->ID, WPRelay_Results_Controller::META_EVENT_TYPE, true );
			echo '<div class="wprelay-result" data-event-id="' . esc_attr( (string) get_post_meta( $result->ID, WPRelay_Results_Controller::META_EVENT_ID, true ) ) . '">';
			echo '<p><strong>' . esc_html( get_the_title( $result ) ) . '</strong></p>';
			echo '<div class="wprelay-result-content">' . wp_kses_post( wpautop( $result->post_content ) ) . '</div>';
			echo '<p class="description">';
			printf(
				/* translators: 1: event type, e.g. post.published.result; 2: date and time. */
				esc_html__( '%1$s, %2$s', 'wprelay' ),
				'<code>' . esc_html( $type ) . '</code>',
				esc_html( get_the_date( get_option( 'date_format' ) . ' ' . get_option( 'time_format' ), $result ) )
			);
			if ( current_user_can( 'edit_post', $result->ID ) ) {
				echo ' &middot; <a href="' . esc_url( (string) get_edit_post_link( $result->ID ) ) . '">' . esc_html__( 'Open', 'wprelay' ) . '</a>';
			}
			echo '</p></div>';
		}
		echo '</div>';
	}
}
