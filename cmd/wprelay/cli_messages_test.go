package main

// The CLI's answers say what happened and what to do next.

import (
	"strings"
	"testing"
)

func TestCLI_AdminURLAtThePublicListener(t *testing.T) {
	e := newAdminEnv(t)
	for _, args := range [][]string{{"events", "list"}, {"stats"}, {"dlq", "list"}} {
		_, stderr, code := runCLI(append(args, "--admin-url", e.public, "--token-file", e.tokenFile)...)
		if code != 2 || !strings.Contains(stderr, "--admin-url "+e.public+" is the public webhook listener, not the admin API") ||
			!strings.Contains(stderr, "http://127.0.0.1:8081") || strings.Contains(stderr, "webhooks go to") {
			t.Errorf("%v: exit %d\n%s", args, code, stderr)
		}
	}
	_, stderr, code := runCLI("healthcheck", "--url", e.public+"/readyz")
	if code != 1 || !strings.Contains(stderr, "public webhook listener") {
		t.Errorf("healthcheck at the public listener: exit %d\n%s", code, stderr)
	}
}
