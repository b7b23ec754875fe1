package relay

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
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
		{"empty types match all, mirror", "site", "", "post.published", []Match{{Target: "ai"}, {Target: "staging", Mirror: true}}},
		{"other source", "gh", "", "push", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := r.Match(&Event{Source: c.source, Tenant: c.tenant, Type: c.typ}); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// stripeEnvelope is a Stripe-like envelope for the where tests.
const stripeEnvelope = `{"id":"e1","source":"stripe","tenant":"acme","type":"invoice.paid",
 "actor":{"id":"","email":"ann@example.com"},"subject":{"id":"in_1","type":"invoice"},
 "action":{"type":"paid","reason":""},
 "data":{"object":{"id":"in_1","currency":"usd","amount_due":2000,"paid":true,"lines":[{"sku":"pro"}],"note":null,"memo":""}}}`

func TestCondition_Holds(t *testing.T) {
	env := DecodeEnvelope([]byte(stripeEnvelope))
	cases := []struct {
		c    Condition
		want bool
	}{
		{Condition{"data.object.currency", OpEq, "usd"}, true},
		{Condition{"data.object.currency", OpEq, "USD"}, false},
		{Condition{"data.object.amount_due", OpEq, "2000"}, true},
		{Condition{"data.object.amount_due", OpEq, "2000.0"}, true},
		{Condition{"data.object.amount_due", OpEq, "200"}, false},
		{Condition{"data.object.paid", OpEq, "true"}, true},
		{Condition{"data.object.paid", OpEq, "false"}, false},
		{Condition{"data.object.lines.0.sku", OpEq, "pro"}, true},
		{Condition{"data.object.lines.1.sku", OpEq, "pro"}, false},
		{Condition{"data.object.lines", OpEq, "pro"}, false},
		{Condition{"data.object.missing", OpEq, ""}, false},
		{Condition{"actor.email", OpPresent, ""}, true},
		{Condition{"actor.id", OpPresent, ""}, false}, // "" is not set
		{Condition{"actor.id", OpAbsent, ""}, true},
		{Condition{"data.object.note", OpAbsent, ""}, true}, // null
		{Condition{"data.object.memo", OpAbsent, ""}, true}, // ""
		{Condition{"data.object.nope.deeper", OpAbsent, ""}, true},
		{Condition{"data.object", OpPresent, ""}, true},
		{Condition{"subject.type", OpPrefix, "inv"}, true},
		{Condition{"subject.type", OpPrefix, "post"}, false},
		{Condition{"data.object.amount_due", OpPrefix, "20"}, true},
		{Condition{"data.object.lines", OpPrefix, "x"}, false},
		{Condition{"type", OpEq, "invoice.paid"}, true},
	}
	for _, c := range cases {
		if got := c.c.Holds(env); got != c.want {
			t.Errorf("%+v: %v, want %v", c.c, got, c.want)
		}
	}
	if (Condition{"data.x", OpPresent, ""}).Holds(nil) {
		t.Error("a condition held on an envelope that is not an object")
	}
}

func TestCondition_Validate(t *testing.T) {
	for _, c := range []struct {
		c    Condition
		want string // "" = valid
	}{
		{Condition{"data.object.currency", OpEq, "usd"}, ""},
		{Condition{"actor.email", OpPresent, ""}, ""},
		{Condition{"subject.type", OpPrefix, "post"}, ""},
		{Condition{"type", OpEq, "x"}, ""},
		{Condition{"payload.x", OpEq, "x"}, `no field "payload"`},
		{Condition{"actor.mail", OpPresent, ""}, "actor has the fields id and email"},
		{Condition{"actor", OpPresent, ""}, "test one of its fields"},
		{Condition{"type.x", OpPresent, ""}, "type is a string"},
		{Condition{"data..x", OpPresent, ""}, "empty path segment"},
		{Condition{"data.x", "regex", "x"}, `unknown test "regex"`},
		{Condition{"data.x", OpPrefix, ""}, "empty prefix"},
	} {
		err := c.c.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.c, err, c.want)
		}
	}
}

func TestRouter_MatchWhere(t *testing.T) {
	r := NewRouter([]Route{
		{Source: "stripe", Where: []Condition{{"data.object.currency", OpEq, "usd"}, {"actor.email", OpPresent, ""}}, To: []string{"us"}},
		{Source: "stripe", Where: []Condition{{"data.object.currency", OpEq, "eur"}}, To: []string{"eu"}},
		{Source: "stripe", Where: []Condition{{"subject.type", OpPrefix, "inv"}}, To: []string{"invoices"}, MirrorTo: []string{"us"}},
	})
	got := r.Match(&Event{Source: "stripe", Tenant: "acme", Type: "invoice.paid", Envelope: json.RawMessage(stripeEnvelope)})
	want := []Match{{Target: "us"}, {Target: "invoices"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestRouter_Deliveries(t *testing.T) {
	r := NewRouter([]Route{
		{Source: "stripe", To: []string{"crm", "ai"}, MirrorTo: []string{"staging"}},
		{Source: "stripe", To: []string{"preview"}, DryRun: true},
	})
	r.Ordering = map[string]Order{"crm": {Coalesce: true}, "preview": {}}
	now := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ev := &Event{ID: "e1", Source: "stripe", Type: "invoice.paid", Envelope: json.RawMessage(stripeEnvelope)}
	got := r.Deliveries(ev, now)
	want := []Delivery{
		{EventID: "e1", Target: "crm", Status: DeliveryPending, NextAt: now, CreatedAt: now, Order: &Order{Key: "invoice:in_1", Coalesce: true}},
		{EventID: "e1", Target: "ai", Status: DeliveryPending, NextAt: now, CreatedAt: now},
		{EventID: "e1", Target: "staging", Status: DeliveryPending, NextAt: now, CreatedAt: now, Mirror: true},
		{EventID: "e1", Target: "preview", Status: DeliverySkipped, NextAt: now, CreatedAt: now},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	// No subject id: no ordering.
	ev.Envelope = json.RawMessage(`{"subject":{"id":"","type":"invoice"}}`)
	if d := r.Deliveries(ev, now); d[0].Order != nil {
		t.Fatalf("ordered without a subject: %+v", d[0].Order)
	}
}
