//go:build integration

package main

// The wp-admin page (Tools → Webhook Relay) in a real browser: Debian's
// Chromium driven by chromedp, headless, against the real WordPress with
// the real sidecar, all on loopback. Screenshots are test artifacts (under
// WPRELAY_ARTIFACTS, else the test's temp dir); -update-screenshot also
// writes the README's images in docs/img.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wprelay/wprelay/internal/wpstack"
)

var updateScreenshot = flag.Bool("update-screenshot", false, "write the README's wp-admin screenshots (docs/img) from TestWP_AdminPage_Browser")

// chromiumPath returns Debian's Chromium, installing it (scripts/wpstack/
// install-packages.sh, as make deps does) when it is missing.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, try := range []bool{false, true} {
		for _, p := range []string{"/usr/bin/chromium", "/usr/lib/chromium/chromium"} {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
		if !try {
			out, err := exec.Command("sh", filepath.Join("..", "..", "scripts", "wpstack", "install-packages.sh")).CombinedOutput()
			if err != nil {
				t.Logf("install-packages.sh: %v\n%s", err, out)
			}
		}
	}
	wpstack.Fail(t, fmt.Errorf("%w: Chromium is not installed (Debian package chromium; make deps installs it)", wpstack.ErrCannotProvision))
	return ""
}

// browser is a headless Chromium tab for one test.
type browser struct {
	t   *testing.T
	ctx context.Context
	dir string // screenshots
	n   int
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)), chromedp.UserDataDir(t.TempDir()), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("no-proxy-server", true),
		// Nothing leaves loopback, even by name.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"),
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(cancelAlloc)
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx); err != nil { // starts the browser; this context has no timeout
		t.Fatalf("start Chromium: %v", err)
	}
	dir := os.Getenv("WPRELAY_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &browser{t: t, ctx: ctx, dir: dir}
}

// do runs steps within 30 s.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v", what, err)
	}
}

// submit clicks a button that submits a form and waits for the page it
// leads to.
func (b *browser) submit(what, sel string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil || resp.Status != 200 {
		b.shot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("%s: %v (response %v)", what, err, resp)
	}
}

// text returns the visible text of the first element matching sel.
func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 15*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.shot("failed-text")
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// count returns how many elements match sel.
func (b *browser) count(sel string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](fmt.Sprintf("document.querySelectorAll(%q).length", sel)))
	if err != nil {
		b.t.Fatalf("count %s: %v", sel, err)
	}
	return n
}

// wantText fails unless the element's text contains every part.
func (b *browser) wantText(sel string, parts ...string) string {
	b.t.Helper()
	s := b.text(sel)
	for _, p := range parts {
		if !strings.Contains(s, p) {
			b.shot("failed-want-text")
			b.t.Fatalf("%s: %q lacks %q", sel, s, p)
		}
	}
	return s
}

// shot saves a screenshot of the viewport as an artifact and returns it.
func (b *browser) shot(name string) []byte {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return nil
	}
	b.n++
	path := filepath.Join(b.dir, fmt.Sprintf("wp-admin-%02d-%s.png", b.n, name))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s (%d KB)", path, len(png)>>10)
	return png
}

// readme writes a screenshot to docs/img with -update-screenshot.
func (b *browser) readme(png []byte, name string) {
	b.t.Helper()
	if !*updateScreenshot || png == nil {
		return
	}
	if len(png) > 300<<10 {
		b.t.Errorf("%s is %d KB; keep README images under 300 KB", name, len(png)>>10)
	}
	path := filepath.Join("..", "..", "docs", "img", name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("README image: %s", path)
}

func (b *browser) login(site *wpstack.Site) {
	b.t.Helper()
	b.do("open the login page", chromedp.Navigate(site.URL+"/wp-login.php"), chromedp.WaitVisible(chromedp.ID("user_login")),
		chromedp.SetValue(chromedp.ID("user_login"), site.AdminUser), chromedp.SetValue(chromedp.ID("user_pass"), site.AdminPass))
	b.submit("log in", "#wp-submit")
	b.do("reach the dashboard", chromedp.WaitVisible(chromedp.ID("wpadminbar")))
}

func TestWP_AdminPage_Browser(t *testing.T) {
	start := time.Now()
	site := sharedSite(t)
	var broken atomic.Bool
	tg := newTarget(t, func(int, string) answer {
		if broken.Load() {
			return answer{status: 400}
		}
		return answer{status: 200}
	})
	sc := startWPSidecar(t, site, wpSidecarConfig(site, tg.URL(), "5s"))
	page := site.URL + "/wp-admin/tools.php?page=wprelay"

	// Events through the sidecar: Stripe invoices delivered to WordPress, a
	// Stripe event no route takes, and a post WordPress published that the
	// fake target refuses for good (a dead letter).
	stripeSend := func(id, typ string) string {
		body := stripeEvent(id, typ)
		r := post(t, sc.public+"/hooks/stripe", body, map[string]string{"Stripe-Signature": signStripe(body, stripeSecret, time.Now())})
		if r.Status != 202 {
			t.Fatalf("stripe %s: %d %v", id, r.Status, r.Body)
		}
		return r.Body["id"].(string)
	}
	suffix := fmt.Sprint(time.Now().UnixNano())
	stripeSend("evt_ui_created_"+suffix, "invoice.created")
	stripeSend("evt_ui_customer_"+suffix, "customer.created") // no route: discarded
	paid := stripeSend("evt_ui_paid_"+suffix, "invoice.paid")
	sc.waitEvent(paid, "delivered", 15*time.Second)
	broken.Store(true)
	postID, _ := publishPost(t, site, "Spring sale starts Monday")
	var dead string
	waitFor(t, 15*time.Second, "the published post to be dead-lettered", func() bool {
		var page struct {
			Deliveries []struct {
				EventID string `json:"event_id"`
				Type    string `json:"type"`
			} `json:"deliveries"`
		}
		sc.adminDo("GET", "/admin/v1/dlq?source=site", "", &page)
		for _, d := range page.Deliveries {
			if d.Type == "post.published" {
				dead = d.EventID
				return true
			}
		}
		return false
	})
	stripeSend("evt_ui_failed_"+suffix, "invoice.payment_failed")
	t.Logf("events ready after %s (post %d, dead letter %s)", time.Since(start).Round(time.Millisecond), postID, dead)

	b := newBrowser(t)
	b.login(site)

	// Events: the delivered invoice is listed with its badge.
	row := fmt.Sprintf(`tr[data-event-id=%q]`, paid)
	b.do("open Tools → Webhook Relay", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(row)))
	b.wantText(row, "invoice.paid", "delivered", "wordpress")
	b.wantText(fmt.Sprintf(`tr[data-event-id=%q]`, dead), "post.published", "failed", "fake")
	b.readme(b.shot("events"), "wp-admin-events.png")

	// Paging by cursor, two events a page: Older to the end, then back.
	perPage := filepath.Join(site.Root, "wp-content", "mu-plugins", "wprelay-test-per-page.php")
	if err := os.WriteFile(perPage, []byte("<?php add_filter( 'wprelay_admin_per_page', function () { return 2; } );\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(perPage) })
	ids := func() []string {
		t.Helper()
		s, err := chromedp.Run(b.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr[data-event-id]")].map(r => r.dataset.eventId)`))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	b.do("open page 1", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS("tr[data-event-id]")))
	var pages [][]string
	pages = append(pages, ids())
	for len(pages) < 5 && b.count("a.wprelay-older") > 0 {
		b.submit("go to an older page", ".tablenav.top a.wprelay-older")
		b.do("see the page", chromedp.WaitVisible(chromedp.CSS("tr[data-event-id]")))
		pages = append(pages, ids())
	}
	seen := map[string]bool{}
	for _, p := range pages {
		if len(p) > 2 {
			t.Fatalf("a page lists %d events, want at most 2", len(p))
		}
		for _, id := range p {
			if seen[id] {
				t.Fatalf("event %s on two pages: %v", id, pages)
			}
			seen[id] = true
		}
	}
	if len(pages) != 3 || len(seen) != 5 || !seen[paid] || !seen[dead] {
		t.Fatalf("pages %v, want the 5 events on 3 pages", pages)
	}
	b.submit("go back to a newer page", ".tablenav.top a.wprelay-newer")
	b.do("see page 2", chromedp.WaitVisible(chromedp.CSS("tr[data-event-id]")))
	if got := ids(); strings.Join(got, ",") != strings.Join(pages[1], ",") {
		t.Fatalf("Newer from page 3 shows %v, want page 2 %v", got, pages[1])
	}
	os.Remove(perPage)

	// Filters: status=failed shows the dead one only.
	b.do("filter failed", chromedp.SetValue(chromedp.ID("wprelay-status"), "failed"))
	b.submit("submit the filter", "#wprelay-event-filters [type=submit]")
	b.do("see the filtered list", chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`tr[data-event-id=%q]`, dead))))
	if n := b.count(row); n != 0 {
		t.Fatalf("status=failed lists the delivered event")
	}

	// Detail: deliveries, attempt timeline, envelope; then Replay.
	b.do("open the events", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(row)))
	b.submit("open the detail", row+" a.wprelay-event-link")
	delivery := `.wprelay-delivery[data-target="wordpress"]`
	b.do("see the detail", chromedp.WaitVisible(chromedp.ID("wprelay-event")))
	b.wantText("#wprelay-event-facts", paid, "stripe / acme", "stripe:acme:evt_ui_paid_"+suffix)
	b.wantText(delivery, "succeeded", paid+":wordpress", "HTTP 202")
	b.wantText(delivery+" .wprelay-attempts", "1")
	b.wantText("#wprelay-envelope", `"type": "invoice.paid"`)
	b.submit("click Replay to wordpress", delivery+" form button")
	b.wantText("#wprelay-notice", "Replay queued", "same Idempotency-Key")
	waitFor(t, 15*time.Second, "the replay to be delivered", func() bool {
		ev := sc.waitEvent(paid, "delivered", 15*time.Second)
		return ev.Deliveries[0].Attempts == 2
	})
	b.do("reload the detail", chromedp.Navigate(page+"&event="+paid), chromedp.WaitVisible(chromedp.CSS(delivery)))
	b.wantText(delivery+" .wprelay-attempts", "2")
	if n := b.count(delivery + " .wprelay-timeline li"); n != 2 {
		t.Fatalf("the attempt timeline shows %d attempts, want 2", n)
	}
	b.wantText(delivery+" .wprelay-timeline li:last-child", "HTTP 200") // WordPress: a duplicate, 200
	b.readme(b.shot("event-replayed"), "wp-admin-event.png")

	// Dead letters: the refused post; the target is fixed; replay it.
	deadRow := fmt.Sprintf(`tr[data-event-id=%q][data-target="fake"]`, dead)
	b.do("open Dead letters", chromedp.Navigate(page+"&tab=dlq"), chromedp.WaitVisible(chromedp.CSS(deadRow)))
	b.wantText(deadRow, "post.published", "HTTP 400", "site")
	b.shot("dead-letters")
	broken.Store(false)
	b.submit("replay all dead letters", "#wprelay-dlq-replay [type=submit]")
	b.wantText("#wprelay-notice", "1 dead delivery replayed")
	sc.waitEvent(dead, "delivered", 15*time.Second)
	b.do("reload Dead letters", chromedp.Navigate(page+"&tab=dlq"), chromedp.WaitVisible(chromedp.CSS("table.wp-list-table")))
	if n := b.count(deadRow); n != 0 {
		t.Fatalf("the replayed dead letter is still listed")
	}
	b.do("see it delivered", chromedp.Navigate(page+"&event="+dead), chromedp.WaitVisible(chromedp.ID("wprelay-event")))
	b.wantText("#wprelay-event h2", "delivered")

	// Outbox: the post WordPress emitted was sent. Marked failed, it is
	// sent again with "Retry now" (the sidecar answers: a duplicate).
	rowID := site.QueryInt(t, fmt.Sprintf("SELECT id FROM wp_wprelay_outbox WHERE object_ref = 'post:%d'", postID))
	outboxRow := fmt.Sprintf(`#wprelay-outbox tr[data-row-id="%d"]`, rowID)
	b.do("open the Outbox", chromedp.Navigate(page+"&tab=outbox"), chromedp.WaitVisible(chromedp.CSS(outboxRow)))
	b.wantText(outboxRow, "post.published", fmt.Sprintf("post:%d", postID), "sent")
	site.Query(t, fmt.Sprintf("UPDATE wp_wprelay_outbox SET state = 'failed', last_error = 'HTTP 400: refused by a test' WHERE id = %d", rowID))
	b.do("reload the Outbox", chromedp.Navigate(page+"&tab=outbox&state=failed"), chromedp.WaitVisible(chromedp.CSS(outboxRow)))
	b.wantText(outboxRow, "failed", "refused by a test")
	b.submit("click Retry now", outboxRow+" form button")
	b.wantText("#wprelay-notice", fmt.Sprintf("Outbox row %d was sent", rowID))
	b.do("see it sent", chromedp.Navigate(page+"&tab=outbox"), chromedp.WaitVisible(chromedp.CSS(outboxRow)))
	b.wantText(outboxRow, "sent")

	// Health: reachable, version, token, skew, queue, breakers, constants.
	b.do("open Health", chromedp.Navigate(page+"&tab=health"), chromedp.WaitVisible(chromedp.ID("wprelay-health")))
	b.wantText("#wprelay-health-admin", "reachable, ready")
	if v := b.text("#wprelay-health-version"); !strings.Contains(v, "dev") {
		t.Errorf("version: %q", v)
	}
	b.wantText("#wprelay-health-token", "accepted")
	b.wantText("#wprelay-health-public", "reachable")
	b.wantText("#wprelay-health-skew", "fine")
	b.wantText("#wprelay-health-queue", "0")
	b.wantText(`#wprelay-targets tr[data-target="wordpress"]`, "closed", "succeeded")
	b.wantText(`#wprelay-targets tr[data-target="fake"]`, "closed")
	b.wantText("#wprelay-constants", "WPRELAY_ADMIN_TOKEN", "WPRELAY_SITE_JWT_SECRET", "set")
	b.shot("health")
	html, err := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range allSecrets {
		if strings.Contains(html, secret) {
			t.Errorf("the page shows the secret %q", secret[:12]+"…")
		}
	}

	// What senders put in an event is printed as text, never as markup.
	xss := stripeSend("evt_ui_xss_"+suffix, `customer.<img src=x id=wprelay-xss onerror=alert(1)>`)
	xssRow := fmt.Sprintf(`tr[data-event-id=%q]`, xss)
	b.do("list an event with markup in its type", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.CSS(xssRow)))
	b.wantText(xssRow, "customer.<img src=x")
	b.do("open its detail", chromedp.Navigate(page+"&event="+xss), chromedp.WaitVisible(chromedp.ID("wprelay-event")))
	b.wantText("#wprelay-event h2", "customer.<img")
	if n := b.count("#wprelay-xss"); n != 0 {
		t.Fatalf("an event's type became an element of the page")
	}

	// The token is wrong, then the sidecar is down: the page says what to do.
	consts := wpConstants(sc.public, sc.admin)
	consts["WPRELAY_ADMIN_TOKEN"] = "not-the-admin-token-0000"
	site.SetConstants(t, consts)
	b.do("open with a wrong token", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("wprelay-problem")))
	b.wantText("#wprelay-problem", "refused the admin token", "WPRELAY_ADMIN_TOKEN")
	b.shot("wrong-token")
	consts = wpConstants(sc.public, "http://"+freeAddr(t))
	site.SetConstants(t, consts)
	b.do("open with the sidecar down", chromedp.Navigate(page), chromedp.WaitVisible(chromedp.ID("wprelay-problem")))
	b.wantText("#wprelay-problem", "does not answer", "Is wprelay running?")
	b.do("Health with the sidecar down", chromedp.Navigate(page+"&tab=health"), chromedp.WaitVisible(chromedp.ID("wprelay-health")))
	b.wantText("#wprelay-health-admin", "not reachable")
	b.shot("sidecar-down")
	site.SetConstants(t, wpConstants(sc.public, sc.admin))

	tg.checkAuthentic()
	t.Logf("browser test: %s in all", time.Since(start).Round(time.Millisecond))
}
