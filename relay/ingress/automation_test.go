package ingress

import (
	"testing"

	"github.com/wprelay/wprelay/relay"
)

// Routing at ingest: conditions on the envelope, fan-out with mirror
// copies, ordered deliveries keyed by subject, and dry-run deliveries
// recorded with the request Preview gives.
func TestIngress_RoutesWithWhereMirrorOrderDryRun(t *testing.T) {
	in, db := mustIngress(t, githubSource(t, "gh", Tenant{Keys: [][]byte{[]byte("s")}}))
	r := relay.NewRouter([]relay.Route{
		{Source: "gh", Where: []relay.Condition{{Path: "data.ref", Op: relay.OpPrefix, Value: "refs/heads/"}}, To: []string{"ci"}, MirrorTo: []string{"staging"}},
		{Source: "gh", Where: []relay.Condition{{Path: "data.ref", Op: relay.OpEq, Value: "refs/tags/v1"}}, To: []string{"release"}},
		{Source: "gh", To: []string{"ai"}, DryRun: true},
	})
	r.Ordering = map[string]relay.Order{"ci": {Coalesce: true}}
	in.Router = r
	var previewed []string
	in.Preview = func(ev *relay.Event, d relay.Delivery) *relay.Request {
		previewed = append(previewed, d.Target)
		return &relay.Request{Method: "POST", URL: "https://ai.example/" + ev.Type, Body: []byte(`{"x":1}`)}
	}
	w, body := serve(in, githubRequest("s", `{"ref":"refs/heads/main","repository":{"full_name":"o/r"}}`, "d1", ""))
	if w.Code != 202 {
		t.Fatalf("%d %v", w.Code, body)
	}
	ev, err := db.Event(t.Context(), body["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]relay.Delivery{}
	for _, d := range ev.Deliveries {
		got[d.Target] = d
	}
	if len(got) != 3 || got["ci"].Order == nil || !got["ci"].Order.Coalesce || got["ci"].Order.Key != "repository:o/r" ||
		!got["staging"].Mirror || got["staging"].Order != nil || got["ai"].Status != relay.DeliverySkipped ||
		got["ai"].Request == nil || got["ai"].Request.URL != "https://ai.example/push" {
		t.Fatalf("deliveries: %+v", ev.Deliveries)
	}
	if len(previewed) != 1 || previewed[0] != "ai" {
		t.Fatalf("previewed %v, want only the dry-run delivery", previewed)
	}
	if ev.Status != relay.EventQueued {
		t.Fatalf("status %s", ev.Status)
	}
}
