package admin_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/admin"
	"github.com/wprelay/wprelay/relay/relaytest"
)

// An event stored before limits.max_depth (a body 9,999 levels deep) cannot
// be encoded as JSON: its detail answers 500 naming it (it answered 200
// with an empty body), and an export goes on past it and then fails naming
// it (it stopped there, so no later event was exported).
func TestAPI_UnencodableEvent(t *testing.T) {
	ctx := t.Context()
	db := relaytest.NewMemStore()
	at := time.Now().Add(-time.Minute)
	deep := strings.Repeat("[", 9999) + strings.Repeat("]", 9999)
	add := func(key, env, body string, at time.Time) string {
		outs, err := db.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{{
			Event:      relay.Event{Source: "gh", Type: "push", IdempotencyKey: key, ReceivedAt: at, Envelope: []byte(env)},
			Raw:        &relay.Raw{Method: "POST", Path: "/hooks/gh", Body: []byte(body)},
			BodyHash:   sha256.Sum256([]byte(body)),
			KeyExpires: at.Add(time.Hour),
		}}})
		if err != nil {
			t.Fatal(err)
		}
		return outs[0].ID
	}
	bad := add("gh::deep", `{"type":"push","data":`+deep+`}`, deep, at)
	later := add("gh::later", `{"type":"push","data":{}}`, `{}`, at.Add(time.Second))
	const token = "unencodable-test-token-0123456789"
	srv := httptest.NewServer(admin.New(db, token, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	resp, body := get("/admin/v1/events/" + bad)
	var answer map[string]string
	if err := json.Unmarshal(body, &answer); err != nil || resp.StatusCode != 500 || answer["id"] != bad || !strings.Contains(answer["message"], bad) {
		t.Errorf("detail of the deep event: %d %q; want 500 naming it", resp.StatusCode, body)
	}
	if resp, body := get("/admin/v1/events/" + later); resp.StatusCode != 200 || len(body) == 0 {
		t.Errorf("detail of the next event: %d %q", resp.StatusCode, body)
	}

	resp, body = get("/admin/v1/export")
	var ids []string
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		var rec admin.Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("export line: %v", err)
		}
		ids = append(ids, rec.ID)
	}
	if len(ids) != 1 || ids[0] != later {
		t.Errorf("export holds %v, want the later event %s", ids, later)
	}
	if msg := resp.Trailer.Get(admin.TrailerError); !strings.Contains(msg, bad) {
		t.Errorf("export error trailer = %q, want it to name %s", msg, bad)
	}
	if n := resp.Trailer.Get(admin.TrailerCount); n != "1" {
		t.Errorf("export count trailer = %q, want 1", n)
	}
}
