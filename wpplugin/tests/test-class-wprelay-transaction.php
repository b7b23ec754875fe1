<?php
/**
 * Tests of the statement classifiers of WPRelay_Transaction.
 *
 * @package WPRelay
 */

use PHPUnit\Framework\TestCase;

/**
 * The dispatch transaction notices, through $wpdb's query filter, the
 * statements that end it and the tables a handler writes (whose engine it
 * then checks); everything else passes unnoticed.
 */
final class WPRelay_Transaction_Test extends TestCase {

	/**
	 * Statements and what ends_transaction() names ('' for none).
	 *
	 * @return array
	 */
	public function ending(): array {
		return array(
			'commit'                 => array( 'COMMIT', 'COMMIT' ),
			'commit lower case'      => array( "  commit work\n", 'COMMIT' ),
			'comment first'          => array( '/* plugin x */ COMMIT', 'COMMIT' ),
			'rollback'               => array( 'ROLLBACK', 'ROLLBACK' ),
			'rollback to savepoint'  => array( 'ROLLBACK TO SAVEPOINT sp1', '' ),
			'begin'                  => array( 'BEGIN', 'BEGIN' ),
			'start transaction'      => array( "START\tTRANSACTION", 'START TRANSACTION' ),
			'autocommit'             => array( 'SET autocommit = 1', 'SET AUTOCOMMIT' ),
			'session autocommit'     => array( 'SET SESSION autocommit=0', 'SET SESSION AUTOCOMMIT' ),
			'create table'           => array( 'CREATE TABLE wp_x (id int)', 'CREATE' ),
			'create temporary table' => array( 'CREATE TEMPORARY TABLE t (id int)', '' ),
			'alter'                  => array( 'ALTER TABLE wp_x ADD c int', 'ALTER' ),
			'drop table'             => array( 'DROP TABLE wp_x', 'DROP' ),
			'drop temporary table'   => array( 'DROP TEMPORARY TABLE t', '' ),
			'truncate'               => array( 'TRUNCATE wp_x', 'TRUNCATE' ),
			'lock tables'            => array( 'LOCK TABLES wp_x WRITE', 'LOCK TABLES' ),
			'savepoint'              => array( 'SAVEPOINT sp1', '' ),
			'select'                 => array( "SELECT 'COMMIT' FROM wp_options", '' ),
			'insert'                 => array( "INSERT INTO wp_x (a) VALUES ('BEGIN')", '' ),
			'update named commit'    => array( 'UPDATE wp_commits SET a = 1', '' ),
		);
	}

	/**
	 * One statement.
	 *
	 * @dataProvider ending
	 * @param string $sql  Statement.
	 * @param string $want What it names.
	 */
	public function test_ends_transaction( string $sql, string $want ): void {
		$this->assertSame( $want, WPRelay_Transaction::ends_transaction( $sql ) );
	}

	/**
	 * Statements and the table written_table() returns ('' for none).
	 *
	 * @return array
	 */
	public function writes(): array {
		return array(
			'insert'             => array( "INSERT INTO wp_exactly_myisam (`event_id`) VALUES ('a')", 'wp_exactly_myisam' ),
			'insert backticks'   => array( 'INSERT INTO `wp_postmeta` (`meta_key`) VALUES (%s)', 'wp_postmeta' ),
			'insert ignore'      => array( 'INSERT IGNORE INTO wp_x VALUES (1)', 'wp_x' ),
			'insert without into' => array( 'insert low_priority wp_x values (1)', 'wp_x' ),
			'replace'            => array( 'REPLACE INTO wp_options VALUES (1)', 'wp_options' ),
			'update'             => array( "UPDATE `wp_usermeta` SET `meta_value` = '2' WHERE `umeta_id` = 3", 'wp_usermeta' ),
			'update ignore'      => array( 'UPDATE LOW_PRIORITY IGNORE wp_x SET a = 1', 'wp_x' ),
			'delete'             => array( 'DELETE FROM wp_x WHERE id = 1', 'wp_x' ),
			'delete quick'       => array( 'DELETE QUICK FROM `wp_x`', 'wp_x' ),
			'select'             => array( 'SELECT * FROM wp_x', '' ),
			'show'               => array( 'SHOW TABLES', '' ),
		);
	}

	/**
	 * One statement.
	 *
	 * @dataProvider writes
	 * @param string $sql  Statement.
	 * @param string $want The table it writes.
	 */
	public function test_written_table( string $sql, string $want ): void {
		$this->assertSame( $want, WPRelay_Transaction::written_table( $sql ) );
	}
}
