package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/config"
)

// A template that fails on the Stripe sample (it has no invoice lines) is
// not refused: the start logs a warning naming the target and the field,
// a real invoice with lines is delivered, and an event without them is
// dead-lettered with the reason.
func TestTemplates_JudgedByWhatTheyDoToEvents(t *testing.T) {
	crm := newScriptedTarget(t)
	cfg := config.Default()
	cfg.Listen, cfg.Admin.Listen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
	cfg.Admin.Token = cliAdminToken
	cfg.Sources = []config.Source{{Name: "stripe", Kind: "stripe", Secrets: []config.Secret{cliStripeSecret}}}
	cfg.Targets = []config.Target{{Name: "crm", Kind: "http", URL: crm.srv.URL, AllowPrivate: true, MaxAttempts: 3,
		Template: `{"invoice": {{ json .data.object.id }}, "first_line": {{ json (index .data.object.lines.data 0).id }}}`}}
	cfg.Routes = []config.Route{{Source: "stripe", Types: []string{"invoice.*"}, To: []string{"crm"}}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the template is refused: %v", err)
	}
	var logs syncLog
	m := &Main{Config: cfg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	warn := logs.String()
	if !strings.Contains(warn, `"level":"WARN","msg":"template fails on the sample event`) || !strings.Contains(warn, `"target":"crm"`) ||
		!strings.Contains(warn, `"kind":"stripe"`) || !strings.Contains(warn, `"field":".data.object.lines.data"`) {
		t.Fatalf("no warning naming the target and the field at start:\n%s", warn)
	}

	send := func(body string) string {
		ts := fmt.Sprint(time.Now().Unix())
		mac := hmac.New(sha256.New, []byte(cliStripeSecret))
		mac.Write([]byte(ts + "." + body))
		req, _ := http.NewRequest("POST", "http://"+m.PublicAddr()+"/hooks/stripe", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Stripe-Signature", "t="+ts+",v1="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 202 {
			t.Fatalf("ingest: %d %s", resp.StatusCode, b)
		}
		return strings.Split(strings.Split(string(b), `"id":"`)[1], `"`)[0]
	}
	fixture, err := os.ReadFile("../../testdata/provider/stripe-invoice-paid.txt")
	if err != nil {
		t.Fatal(err)
	}
	_, invoice, _ := strings.Cut(string(fixture), "\n\n")
	real := send(invoice)
	bare := send(`{"id":"evt_no_lines","object":"event","type":"invoice.created","created":1764324000,"data":{"object":{"id":"in_no_lines","object":"invoice"}}}`)

	adm := "http://" + m.AdminAddr()
	wait := func(id, status string) admin.EventView {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var v admin.EventView
			adminGet(t, adm, "/admin/v1/events/"+id, &v)
			if v.Status == status {
				return v
			}
			if time.Now().After(deadline) {
				t.Fatalf("event %s: %+v, want %s", id, v, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	wait(real, "delivered")
	v := wait(bare, "failed")
	if d := v.Deliveries[0]; d.Status != "dead" || !strings.Contains(d.Reason, "template") || !strings.Contains(d.Reason, ".data.object.lines.data") {
		t.Fatalf("the event without lines: %+v", d)
	}
	if keys := crm.got(); len(keys) != 1 || keys[0] != real+":crm" {
		t.Fatalf("crm got %v, want only the real invoice", keys)
	}
}

// syncLog is a log sink safe for concurrent writers.
type syncLog struct {
	mu  chan struct{}
	buf strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	if s.mu == nil {
		s.mu = make(chan struct{}, 1)
	}
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.buf.Write(p)
}

func (s *syncLog) String() string {
	s.mu <- struct{}{}
	defer func() { <-s.mu }()
	return s.buf.String()
}
