package ingress

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/provider"
	"github.com/wprelay/wprelay/store"
)

// benchBody is a GitHub push of about 2 KiB.
var benchBody = []byte(`{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",` +
	`"repository":{"id":186853002,"name":"wprelay","full_name":"wprelay/wprelay","private":false,"owner":{"login":"wprelay","id":1}},` +
	`"pusher":{"name":"ann","email":"ann@example.com"},"sender":{"login":"ann","id":21031067},"commits":[` +
	strings.Repeat(`{"id":"59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5","message":"Update the README with the install guide","timestamp":"2026-11-28T10:00:00Z","author":{"name":"Ann","email":"ann@example.com"},"added":[],"removed":[],"modified":["README.md"]},`, 6) +
	`{"id":"0000000000000000000000000000000000000000","message":"last"}]}`)

// benchRouter has a route with conditions on data and a target that
// orders by subject: what makes an event look into its envelope.
func benchRouter() *relay.Router {
	r := relay.NewRouter([]relay.Route{
		{Source: "gh", Types: []string{"push"}, Where: []relay.Condition{
			{Path: "data.repository.full_name", Op: relay.OpEq, Value: "wprelay/wprelay"},
			{Path: "actor.email", Op: relay.OpPresent}}, To: []string{"crm"}, MirrorTo: []string{"staging"}},
		{Source: "gh", To: []string{"wp"}},
	})
	r.Ordering = map[string]relay.Order{"crm": {}}
	return r
}

// BenchmarkIngress_Event is the event building of one request: envelope,
// routes (with conditions), deliveries and ordering.
func BenchmarkIngress_Event(b *testing.B) {
	in := New(nil, benchRouter(), nil, slog.New(slog.DiscardHandler))
	src := &Source{Name: "gh", Kind: "github"}
	it := provider.Item{ID: "d1", Type: "push", Body: benchBody,
		Normal: relay.Normal{Actor: relay.Actor{Email: "ann@example.com"}, Subject: relay.Subject{ID: "186853002", Type: "repository"}}}
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		ev, err := in.event(src, "", it, now, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		if err != nil || len(ev.Deliveries) != 3 || ev.Deliveries[0].Order == nil {
			b.Fatalf("%v %+v", err, ev.Deliveries)
		}
	}
}

// BenchmarkIngress_Serve is one request through the whole handler, the
// bbolt commit (without fsync) included: "nolog" with logging discarded
// before it is formatted, "jsonlog" writing the request's JSON log line
// (to io.Discard), as the sidecar does; the difference is the log line.
func BenchmarkIngress_Serve(b *testing.B) {
	b.Run("nolog", func(b *testing.B) { benchServe(b, slog.New(slog.DiscardHandler)) })
	b.Run("jsonlog", func(b *testing.B) { benchServe(b, slog.New(slog.NewJSONHandler(io.Discard, nil))) })
}

func benchServe(b *testing.B, log *slog.Logger) {
	db, err := store.Open(filepath.Join(b.TempDir(), "wprelay.db"), store.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	v, err := provider.New(provider.Options{Kind: "github"})
	if err != nil {
		b.Fatal(err)
	}
	in := New(db, benchRouter(), []*Source{{Name: "gh", Kind: "github", Verifier: v, Tenants: []Tenant{{Keys: [][]byte{[]byte("s")}}}}}, log)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		w := httptest.NewRecorder()
		// A body of its own: the same body under another delivery id is
		// a duplicate.
		body := strings.Replace(string(benchBody), `"0000000000000000000000000000000000000000"`, fmt.Sprintf(`"%040d"`, i), 1)
		in.ServeHTTP(w, githubRequest("s", body, fmt.Sprint("d", i), ""))
		if w.Code != 202 {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
}
