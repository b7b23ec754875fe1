package provider

import (
	"os/exec"
	"strings"
	"testing"
)

// runPHP runs code with PHP's command-line interpreter, with args as
// $argv[1:], and returns what it prints. It skips the test where PHP is not
// installed: the PHP cross-checks run the providers' own published code
// (WooCommerce's, HubSpot's PHP library's, Shopify's PHP example) against
// ours, and are worth having wherever PHP is.
func runPHP(t *testing.T, code string, args ...string) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php is not installed")
	}
	out, err := exec.Command(php, append([]string{"-r", code, "--"}, args...)...).Output()
	if err != nil {
		t.Fatalf("php: %v", err)
	}
	return strings.TrimSpace(string(out))
}
