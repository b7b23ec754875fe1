//go:build !integration

package main

import "flag"

// -update rewrites the golden files of the CLI tests (testdata/cli). The
// integration build defines the same flag in wp_fixtures_test.go, for its
// own golden file; cli_golden_test.go looks it up by name.
var _ = flag.Bool("update", false, "rewrite golden files (testdata/cli)")
