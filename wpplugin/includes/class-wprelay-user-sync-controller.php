<?php
/**
 * WPRelay_User_Sync_Controller: POST /wp-json/wprelay/v1/user-sync.
 *
 * @package WPRelay
 */

if ( ! defined( 'ABSPATH' ) ) {
	exit;
}

/**
 * Upserts a user by email from a delivered event whose `data` holds
 * email (required), user_login, first_name, last_name, display_name,
 * user_url, description and role.
 *
 * New users get a random password and a role from the allow-list
 * (`wprelay_user_sync_roles`, default subscriber). A role that can manage
 * the site (administrator, or any role with manage_options, edit_users,
 * promote_users, plugin or core capabilities) is never granted, whatever the
 * filter returns, and users who hold one are never modified. Every field is
 * sanitized as WordPress sanitizes its own profile form.
 */
class WPRelay_User_Sync_Controller extends WPRelay_REST_Controller {

	/** Capabilities that make a role privileged: never granted, never modified. */
	const PRIVILEGED_CAPS = array( 'manage_options', 'promote_users', 'edit_users', 'create_users', 'delete_users', 'activate_plugins', 'install_plugins', 'edit_plugins', 'update_core', 'edit_files', 'manage_network', 'unfiltered_html', 'edit_theme_options' );

	/**
	 * Emitter (paused while syncing, so the change does not echo back).
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
		$this->rest_base = 'user-sync';
		$this->emitter   = $emitter;
	}

	/**
	 * The user fields `data` may carry.
	 *
	 * @return array
	 */
	protected function data_schema(): array {
		$text = static function ( int $max ) {
			return array(
				'type'      => 'string',
				'maxLength' => $max,
			);
		};
		return array(
			'description'          => __( 'The user to create or update, found by email.', 'wprelay' ),
			'type'                 => 'object',
			'required'             => true,
			'context'              => array( 'edit' ),
			'additionalProperties' => true,
			'properties'           => array(
				'email'        => array(
					'type'      => 'string',
					'format'    => 'email',
					'maxLength' => 100,
					'required'  => true,
				),
				'user_login'   => $text( 60 ),
				'first_name'   => $text( 200 ),
				'last_name'    => $text( 200 ),
				'display_name' => $text( 250 ),
				'user_url'     => array_merge( $text( 100 ), array( 'format' => 'uri' ) ),
				'description'  => $text( 2000 ),
				'role'         => $text( 60 ),
			),
		);
	}

	/**
	 * Upserts the user.
	 *
	 * @param WP_REST_Request $request The request.
	 * @return WP_REST_Response|WP_Error
	 */
	public function create_item( $request ) {
		$event = $this->envelope( $request );
		$data  = $event['data'];
		$email = sanitize_email( (string) ( $data['email'] ?? '' ) );
		if ( '' === $email || ! is_email( $email ) ) {
			return $this->invalid_event( __( 'data.email is not a valid email address.', 'wprelay' ), array( 'data.email' => 'invalid' ) );
		}
		$allowed = $this->allowed_roles();
		$role    = isset( $data['role'] ) && '' !== $data['role'] ? sanitize_key( (string) $data['role'] ) : '';
		if ( '' !== $role && ! in_array( $role, $allowed, true ) ) {
			return $this->invalid_event(
				/* translators: %s: role name */
				sprintf( __( 'Role "%s" is not in the user-sync allow-list.', 'wprelay' ), $role ),
				array( 'data.role' => 'not allowed' )
			);
		}
		$receipt = $this->store_receipt( $request, $event, 'applying' );
		if ( is_wp_error( $receipt ) ) {
			return $receipt;
		}
		if ( null === $receipt ) {
			return $this->duplicate( (string) $request->get_header( 'idempotency_key' ) );
		}
		$existing = get_user_by( 'email', $email );
		if ( $existing && $this->is_privileged( $existing ) ) {
			$this->receipts->delete( $receipt );
			return new WP_Error( 'wprelay_forbidden_user', __( 'user-sync does not modify users who can manage the site.', 'wprelay' ), array( 'status' => 403 ) );
		}

		$fields = $this->fields( $data );
		$result = $this->emitter->quietly(
			function () use ( $existing, $email, $fields, $role, $allowed ) {
				return $existing ? $this->update( $existing, $fields, $role, $allowed ) : $this->create( $email, $fields, $role, $allowed );
			}
		);
		if ( is_wp_error( $result ) ) {
			$this->receipts->delete( $receipt );
			$status = 'existing_user_email' === $result->get_error_code() || 'existing_user_login' === $result->get_error_code() ? 409 : 422;
			return new WP_Error( 'wprelay_user_sync_failed', $result->get_error_message(), array( 'status' => $status ) );
		}
		$this->receipts->set_result_ref( $receipt, 'user:' . $result['id'] );
		$this->receipts->transition( $receipt, 'applying', 'applied' );
		return new WP_REST_Response(
			array(
				'status'    => 'applied',
				'duplicate' => false,
				'user_id'   => $result['id'],
				'created'   => $result['created'],
			),
			200
		);
	}

	/**
	 * Returns the sanitized profile fields present in $data.
	 *
	 * @param array $data Event data.
	 * @return array
	 */
	private function fields( array $data ): array {
		$out = array();
		foreach ( array( 'first_name', 'last_name', 'display_name' ) as $f ) {
			if ( isset( $data[ $f ] ) && is_scalar( $data[ $f ] ) ) {
				$out[ $f ] = sanitize_text_field( (string) $data[ $f ] );
			}
		}
		if ( isset( $data['user_url'] ) && is_scalar( $data['user_url'] ) ) {
			$out['user_url'] = esc_url_raw( (string) $data['user_url'], array( 'http', 'https' ) );
		}
		if ( isset( $data['description'] ) && is_scalar( $data['description'] ) ) {
			$out['description'] = sanitize_textarea_field( (string) $data['description'] );
		}
		if ( isset( $data['user_login'] ) && is_scalar( $data['user_login'] ) ) {
			$out['user_login'] = sanitize_user( (string) $data['user_login'], true );
		}
		return $out;
	}

	/**
	 * Creates a user.
	 *
	 * @param string   $email   Email.
	 * @param array    $fields  Sanitized fields.
	 * @param string   $role    Requested role ('' for the default).
	 * @param string[] $allowed Allowed roles.
	 * @return array|WP_Error id, created.
	 */
	private function create( string $email, array $fields, string $role, array $allowed ) {
		if ( '' === $role ) {
			$default = (string) get_option( 'default_role', 'subscriber' );
			$role    = in_array( $default, $allowed, true ) ? $default : ( $allowed[0] ?? '' );
		}
		if ( '' === $role ) {
			return new WP_Error( 'wprelay_no_role', __( 'The user-sync allow-list is empty.', 'wprelay' ) );
		}
		$login = $fields['user_login'] ?? '';
		unset( $fields['user_login'] );
		if ( '' === $login ) {
			$login = sanitize_user( strstr( $email, '@', true ), true );
		}
		$login = $this->unique_login( '' === $login ? 'user' : $login );
		$id    = wp_insert_user(
			array_merge(
				$fields,
				array(
					'user_login' => $login,
					'user_email' => $email,
					'user_pass'  => wp_generate_password( 32, true, true ),
					'role'       => $role,
				)
			)
		);
		if ( is_wp_error( $id ) ) {
			return $id;
		}
		return array(
			'id'      => (int) $id,
			'created' => true,
		);
	}

	/**
	 * Updates a user (never a privileged one; the caller checked).
	 *
	 * @param WP_User  $user    The user.
	 * @param array    $fields  Sanitized fields.
	 * @param string   $role    Requested role ('' to keep).
	 * @param string[] $allowed Allowed roles.
	 * @return array|WP_Error id, created.
	 */
	private function update( WP_User $user, array $fields, string $role, array $allowed ) {
		unset( $fields['user_login'] ); // Logins never change.
		$fields['ID'] = $user->ID;
		// Roles move only between allow-listed roles; others are kept.
		if ( '' !== $role && array() === array_diff( (array) $user->roles, $allowed ) ) {
			$fields['role'] = $role;
		}
		$id = wp_update_user( $fields );
		if ( is_wp_error( $id ) ) {
			return $id;
		}
		return array(
			'id'      => (int) $id,
			'created' => false,
		);
	}

	/**
	 * Returns the roles user-sync may grant.
	 *
	 * @return string[]
	 */
	private function allowed_roles(): array {
		/**
		 * Filters the roles /user-sync may grant. Roles that can manage the
		 * site (administrator, or with manage_options, edit_users,
		 * promote_users, plugin or core capabilities) are removed afterwards.
		 *
		 * @since 0.1.0
		 *
		 * @param string[] $roles Default array( 'subscriber' ).
		 */
		$roles = (array) apply_filters( 'wprelay_user_sync_roles', array( 'subscriber' ) );
		$out   = array();
		foreach ( $roles as $name ) {
			$name = sanitize_key( (string) $name );
			$obj  = get_role( $name );
			if ( 'administrator' === $name || null === $obj ) {
				continue;
			}
			$privileged = false;
			foreach ( self::PRIVILEGED_CAPS as $cap ) {
				$privileged = $privileged || $obj->has_cap( $cap );
			}
			if ( ! $privileged ) {
				$out[] = $name;
			}
		}
		return array_values( array_unique( $out ) );
	}

	/**
	 * Tells whether a user can manage the site.
	 *
	 * @param WP_User $user The user.
	 * @return bool
	 */
	private function is_privileged( WP_User $user ): bool {
		if ( in_array( 'administrator', (array) $user->roles, true ) || is_super_admin( $user->ID ) ) {
			return true;
		}
		foreach ( self::PRIVILEGED_CAPS as $cap ) {
			if ( $user->has_cap( $cap ) ) {
				return true;
			}
		}
		return false;
	}

	/**
	 * Returns $login, or $login with a number appended, that no user has.
	 *
	 * @param string $login Wanted login.
	 * @return string
	 */
	private function unique_login( string $login ): string {
		$login     = substr( $login, 0, 50 );
		$candidate = $login;
		$i         = 2;
		while ( username_exists( $candidate ) ) {
			$candidate = $login . $i;
			++$i;
		}
		return $candidate;
	}
}
