//go:build integration

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Routes match on source, type globs and conditions on the envelope; one
// event fans out to several targets, each delivery tracked on its own.
func TestAutomation_Routes_WhereAndFanOut(t *testing.T) {
	h := newHook(t, func(path string, n int, _ hookReq) (int, string, map[string]string) {
		if path == "/b" && n == 1 {
			return 503, `{}`, map[string]string{"Retry-After": "0"}
		}
		return 200, `{}`, nil
	})
	sc := startSidecar(t, t.TempDir(), automationConfig(`
  - {name: a, kind: http, url: "`+h.srv.URL+`/a", allow_private: true}
  - {name: b, kind: http, url: "`+h.srv.URL+`/b", allow_private: true}
  - {name: eu, kind: http, url: "`+h.srv.URL+`/eu", allow_private: true}`, `
  - name: us-invoices
    source: crm
    types: ["invoice.*"]
    where: {data.currency: usd, data.customer.email: {present: true}, data.coupon: {present: false}}
    to: [a, b]
  - {source: crm, types: ["invoice.*"], where: {data.currency: eur, data.amount: {eq: 2000}}, to: [eu]}
  - {source: crm, where: {subject.type: {prefix: "cust"}}, to: [a]}`))
	url := sc.public + "/hooks/crm"
	now := time.Now()
	usd := sendStandard(t, url, wpSigning, crmEvent("invoice.paid", "in_1", now, map[string]any{"currency": "usd", "customer": map[string]any{"email": "ann@example.com"}}))
	noEmail := sendStandard(t, url, wpSigning, crmEvent("invoice.paid", "in_2", now, map[string]any{"currency": "usd", "customer": map[string]any{"email": ""}}))
	coupon := sendStandard(t, url, wpSigning, crmEvent("invoice.paid", "in_3", now, map[string]any{"currency": "usd", "customer": map[string]any{"email": "x@example.com"}, "coupon": "HALF"}))
	eur := sendStandard(t, url, wpSigning, crmEvent("invoice.paid", "in_4", now, map[string]any{"currency": "eur", "amount": 2000.0}))
	eurOther := sendStandard(t, url, wpSigning, crmEvent("invoice.paid", "in_5", now, map[string]any{"currency": "eur", "amount": 2001}))
	cust := sendStandard(t, url, wpSigning, crmEvent("customer.updated", "cus_1", now, nil))

	ev := sc.waitDetail(usd, 15*time.Second, "both deliveries of the usd invoice", func(e eventDetail) bool {
		return e.Status == "delivered"
	})
	if len(ev.Deliveries) != 2 || ev.delivery("a").Attempts != 1 || ev.delivery("b").Attempts != 2 {
		t.Fatalf("fan-out deliveries: %+v", ev.Deliveries)
	}
	for id, want := range map[string][]string{noEmail: nil, coupon: nil, eurOther: nil, eur: {"eu"}, cust: {"a"}} {
		ev := sc.waitDetail(id, 10*time.Second, "routing", func(e eventDetail) bool { return e.Status != "queued" })
		var got []string
		for _, d := range ev.Deliveries {
			got = append(got, d.Target)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("event %s (%s) went to %v, want %v", id, ev.Type, got, want)
		}
		if want == nil && ev.Status != "discarded" {
			t.Errorf("unrouted event %s: status %s", id, ev.Status)
		}
	}
	if h.count("/a") != 2 || h.count("/b") != 2 || h.count("/eu") != 1 {
		t.Fatalf("requests: a %d, b %d, eu %d", h.count("/a"), h.count("/b"), h.count("/eu"))
	}
}

// A configuration with a template or a condition that cannot work is
// refused at start, naming the target or route; secrets stay out of the
// message.
func TestAutomation_InvalidConfigRefusedAtStart(t *testing.T) {
	t.Setenv("AI_KEY", aiKey)
	target := func(extra string) string {
		return `  - {name: ai, kind: http, url: "https://ai.example/v1", auth: {bearer: "${AI_KEY}"}` + extra + `}`
	}
	route := `  - {name: summaries, source: crm, to: [ai]}`
	for _, c := range []struct {
		name, targets, routes, want string
	}{
		{"template syntax", target(`, template: '{"a": {{ .type }'`), route, `targets[0].template: target "ai"`},
		{"template not JSON", target(`, template: '{"a": {{ .type }}}'`), route, `targets[0].template: target "ai": trial render against a sample envelope`},
		{"template function", target(`, template: '{"a": {{ exec "ls" }}}'`), route, `function "exec" not defined`},
		{"where path", target(""), `  - {name: summaries, source: crm, where: {payload.x: 1}, to: [ai]}`, `routes[0] (summaries).where.payload.x`},
		{"where test", target(""), `  - {source: crm, where: {data.x: {like: "a%"}}, to: [ai]}`, `routes[0].where.data.x: data.x: unknown test "like"`},
		{"route to nowhere", target(""), `  - {name: summaries, source: crm, to: [ai, nowhere]}`, `routes[0] (summaries).to[1]: no target named "nowhere"`},
		{"results loop", target(`, reply_to: ai`), route, `results loop: ai → ai`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := filepath.Join(dir, "wprelay.yaml")
			if err := os.WriteFile(cfg, []byte(automationConfig(c.targets, c.routes)), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(binPath, "serve", "--config", cfg, "--listen", freeAddr(t), "--admin-listen", freeAddr(t))
			cmd.Env = append(os.Environ(), "WPRELAY_E2E_ADMIN="+adminToken)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if code := cmd.ProcessState.ExitCode(); code != 2 || err == nil {
					t.Fatalf("exit %d, want 2:\n%s", code, out.String())
				}
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatalf("the sidecar started with a bad config:\n%s", out.String())
			}
			if !strings.Contains(out.String(), c.want) {
				t.Fatalf("output does not say %q:\n%s", c.want, out.String())
			}
			if strings.Contains(out.String(), aiKey) {
				t.Fatalf("the error shows the API key:\n%s", out.String())
			}
		})
	}
}
