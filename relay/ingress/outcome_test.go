package ingress

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/wprelay/wprelay/relay"
)

// The ingest log line says "discarded" for an event no route matched
// (the answer stays 202 queued), and "queued" for a routed one.
func TestIngress_LogOutcomeDiscarded(t *testing.T) {
	in, _ := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	in.Router = relay.NewRouter([]relay.Route{{Source: "gh", Types: []string{"push"}, To: []string{"crm"}}})
	var logs bytes.Buffer
	in.Logger = slog.New(slog.NewJSONHandler(&logs, nil))

	outcomes := func() []string {
		var out []string
		for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
			var l map[string]any
			if err := json.Unmarshal(line, &l); err != nil {
				t.Fatal(err)
			}
			out = append(out, l[relay.LogKeyOutcome].(string))
		}
		logs.Reset()
		return out
	}
	r := githubRequest("s", `{"ref":"a"}`, "d-1", "")
	r.Header.Set("X-GitHub-Event", "release")
	if w, body := serve(in, r); w.Code != 202 || body["status"] != "queued" {
		t.Fatalf("unrouted: %d %v", w.Code, body)
	}
	if got := outcomes(); len(got) != 1 || got[0] != "discarded" {
		t.Fatalf("unrouted event logged as %v, want discarded", got)
	}
	if w, _ := serve(in, githubRequest("s", `{"ref":"b"}`, "d-2", "")); w.Code != 202 {
		t.Fatalf("routed: %d", w.Code)
	}
	if got := outcomes(); len(got) != 1 || got[0] != "queued" {
		t.Fatalf("routed event logged as %v, want queued", got)
	}
}
