//go:build integration

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Through the real binary: an event exported from one sidecar and imported
// into a fresh one gets its deliveries as ingest gave them (relay.NewEvent):
// the mirror copy of a mirror_to route and the subject order of an ordered
// target, with the same Order.
func TestE2E_ImportKeepsMirrorAndOrder(t *testing.T) {
	h := newHook(t, nil)
	cfg := automationConfig(`
  - {name: crm, kind: http, url: "`+h.srv.URL+`/crm", allow_private: true, ordering: subject}
  - {name: staging, kind: http, url: "`+h.srv.URL+`/staging", allow_private: true}`,
		`  - {source: crm, types: ["contact.*"], to: [crm], mirror_to: [staging]}`)
	a := startSidecar(t, t.TempDir(), cfg)
	id := sendStandard(t, a.public+"/hooks/crm", wpSigning, crmEvent("contact.updated", "c_77", time.Now(), nil))
	orig := a.waitDetail(id, 20*time.Second, "delivered", func(e eventDetail) bool { return e.Status == "delivered" })
	file := filepath.Join(t.TempDir(), "export.jsonl")
	cli := func(s *sidecar, args ...string) string {
		cmd := exec.Command(binPath, append(args, "--admin-url", s.admin)...)
		cmd.Env = append(os.Environ(), "WPRELAY_ADMIN_TOKEN="+adminToken)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", args[0], err, out)
		}
		return string(out)
	}
	cli(a, "export", "--since", "0", "-o", file)

	b := startSidecar(t, t.TempDir(), cfg)
	if out := cli(b, "import", file); !strings.Contains(out, "imported 1 event, 0 already present") {
		t.Fatalf("import: %s", out)
	}
	got := b.waitDetail(id, 20*time.Second, "delivered", func(e eventDetail) bool { return e.Status == "delivered" })
	for _, ev := range []eventDetail{orig, got} {
		crm, staging := ev.delivery("crm"), ev.delivery("staging")
		if crm.Mirror || len(crm.Order) == 0 || string(crm.Order) == "null" || !staging.Mirror || len(staging.Order) != 0 {
			t.Fatalf("deliveries of %s: crm %+v, staging %+v", ev.ID, crm, staging)
		}
	}
	if string(got.delivery("crm").Order) != string(orig.delivery("crm").Order) {
		t.Fatalf("imported order %s, want %s", got.delivery("crm").Order, orig.delivery("crm").Order)
	}
}
