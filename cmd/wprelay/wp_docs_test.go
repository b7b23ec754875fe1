//go:build integration

package main

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// docCLICommands returns the `wp wprelay …` lines of README.md's shell
// blocks and of the plugin's readme.txt (indented code), comments cut.
func docCLICommands(t *testing.T) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, file := range []string{"../../README.md", "../../wpplugin/readme.txt"} {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if !strings.HasPrefix(line, "wp wprelay ") {
				continue
			}
			if i := strings.Index(line, " #"); i > 0 {
				line = strings.TrimSpace(line[:i])
			}
			out[file] = append(out[file], line)
		}
		f.Close()
	}
	return out
}

// Docs that run: every `wp wprelay` command README.md and readme.txt show
// runs through WP-CLI's phar against the real site and sidecar, and exits
// 0 when all is well (EVENT_ID: an event delivered to the site).
func TestWP_Docs_CLICommands(t *testing.T) {
	docs := docCLICommands(t)
	if len(docs["../../README.md"]) < 10 || len(docs["../../wpplugin/readme.txt"]) < 10 {
		t.Fatalf("documented commands: %v", docs)
	}
	site := sharedSite(t)
	tg := newTarget(t, nil)
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	// Other tests leave failed and backed-up rows: the documented status
	// and health commands should find a healthy site.
	site.Query(t, "DELETE FROM wp_wprelay_outbox WHERE state <> 'sent'")

	evt := "evt_docs_" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	body := stripeEvent(evt, "invoice.created")
	r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
	if r.Status != 202 {
		t.Fatalf("stripe event: %d %v", r.Status, r.Body)
	}
	id := r.Body["id"].(string)
	sc.waitEvent(id, "delivered", 20*time.Second)
	site.RunCron(t) // dispatch: the receipt is done

	for file, cmds := range docs {
		for _, line := range cmds {
			args := strings.Fields(strings.ReplaceAll(line, "EVENT_ID", id))[1:]
			res := site.WP(t, args...)
			if res.Code != 0 {
				t.Errorf("%s: `%s` exited %d\n%s%s", file, line, res.Code, res.Stdout, res.Stderr)
				continue
			}
			if strings.Contains(line, "events list --status=done") && !strings.Contains(res.Stdout, id) {
				t.Errorf("%s: `%s` does not list the delivered event %s:\n%s", file, line, id, res.Stdout)
			}
		}
	}
}
