package relay

import (
	"reflect"
	"testing"
)

func TestGlob(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "orders/create", true},
		{"*", "", true},
		{"invoice.*", "invoice.created", true},
		{"invoice.*", "invoice.payment.failed", true},
		{"invoice.*", "invoices.created", false},
		{"invoice.*", "customer.created", false},
		{"*.created", "customer.subscription.created", true},
		{"*.created", "customer.updated", false},
		{"orders/*", "orders/create", true},
		{"post.published", "post.published", true},
		{"post.published", "post.published2", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"", "x", false},
	}
	for _, c := range cases {
		if got := Glob(c.pattern, c.s); got != c.want {
			t.Errorf("Glob(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func TestRouter_Match(t *testing.T) {
	r := NewRouter([]Route{
		{Source: "stripe", Types: []string{"invoice.*"}, To: []string{"wordpress"}},
		{Source: "stripe", Tenant: "acme", Types: []string{"invoice.created"}, To: []string{"crm", "wordpress"}, DryRun: true},
		{Source: "site", To: []string{"ai"}, MirrorTo: []string{"staging"}},
	})
	cases := []struct {
		name                string
		source, tenant, typ string
		want                []Match
	}{
		{"glob", "stripe", "", "invoice.paid", []Match{{Target: "wordpress"}}},
		{"live wins over dry run", "stripe", "acme", "invoice.created", []Match{{Target: "wordpress"}, {Target: "crm", DryRun: true}}},
		{"no match", "stripe", "", "customer.created", nil},
		{"empty types match all, mirror", "site", "", "post.published", []Match{{Target: "ai"}, {Target: "staging"}}},
		{"other source", "gh", "", "push", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := r.Match(c.source, c.tenant, c.typ); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
