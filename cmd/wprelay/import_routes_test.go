package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
)

// mirrorOrdered routes stripe invoices to crm, which orders by subject,
// with a mirror copy to wp.
func mirrorOrdered(cfg *config.Config) {
	cfg.Targets[0].Ordering = "subject"
	cfg.Routes = []config.Route{{Source: "stripe", Types: []string{"invoice.*"}, To: []string{"crm"}, MirrorTo: []string{"wp"}}}
}

// An imported event gets its deliveries as ingest gives them (one
// constructor, relay.NewEvent): the mirror copy of a mirror_to route and
// the subject ordering of an ordered target, not only the targets.
func TestCLI_ImportKeepsMirrorAndOrder(t *testing.T) {
	a := newAdminEnv(t, mirrorOrdered)
	id := a.stripe("evt_mirror_order", "invoice.created")
	orig := a.waitStatus(id, "delivered")
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if out, errOut, code := a.cli("export", "--since", "0", "-o", file); code != 0 {
		t.Fatalf("export: exit %d\n%s%s", code, out, errOut)
	}

	b := newAdminEnv(t, mirrorOrdered)
	if out, errOut, code := b.cli("import", file); code != 0 || strings.TrimSpace(out) != "imported 1 event, 0 already present, 0 failed" {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	got := b.waitStatus(id, "delivered")
	for _, v := range []admin.EventView{orig, got} {
		if len(v.Deliveries) != 2 {
			t.Fatalf("event %+v: want deliveries to crm and wp", v)
		}
		crm, wp := v.Deliveries[0], v.Deliveries[1]
		if crm.Target != "crm" || crm.Mirror || crm.Order == nil || crm.Order.Key == "" || wp.Target != "wp" || !wp.Mirror || wp.Order != nil {
			t.Fatalf("deliveries: crm %+v, wp %+v", crm.Delivery, wp.Delivery)
		}
	}
	if *got.Deliveries[0].Order != *orig.Deliveries[0].Order {
		t.Fatalf("imported order %+v, want %+v", *got.Deliveries[0].Order, *orig.Deliveries[0].Order)
	}
}
