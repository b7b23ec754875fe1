package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/wprelay/wprelay/relay/config"
)

// otlpReceiver is a minimal OTLP/HTTP trace receiver on loopback.
type otlpReceiver struct {
	mu    sync.Mutex
	spans []*tracepb.Span
	bad   []string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req coltracepb.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" {
		o.mu.Lock()
		o.bad = append(o.bad, r.URL.Path+" "+r.Header.Get("Content-Type"))
		o.mu.Unlock()
		w.WriteHeader(400)
		return
	}
	if err := proto.Unmarshal(body, &req); err != nil {
		w.WriteHeader(400)
		return
	}
	o.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			o.spans = append(o.spans, ss.Spans...)
		}
	}
	o.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Write(out)
}

func (o *otlpReceiver) byName(name string) []*tracepb.Span {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range o.spans {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}

func TestTracing_SpansReachOTLPAndTargets(t *testing.T) {
	recv := &otlpReceiver{}
	collector := httptest.NewServer(recv)
	defer collector.Close()
	var gotTraceparent string
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTraceparent = r.Header.Get("Traceparent")
	}))
	defer target.Close()

	cfg := config.Default()
	cfg.Admin.Token = "tracing-admin-token-123456"
	cfg.Sources = []config.Source{{Name: "gh", Kind: "github", Secrets: []config.Secret{"gh-secret"}}}
	cfg.Targets = []config.Target{{Name: "crm", Kind: "http", URL: target.URL, AllowPrivate: true}}
	cfg.Routes = []config.Route{{Source: "gh", To: []string{"crm"}}}
	cfg.Tracing = config.Tracing{OTLPEndpoint: collector.URL, BatchTimeout: config.Duration(50 * time.Millisecond)}
	m := MustRunMain(t, cfg)

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	body := `{"action":"opened"}`
	mac := hmac.New(sha256.New, []byte("gh-secret"))
	mac.Write([]byte(body))
	req, _ := http.NewRequest("POST", "http://"+m.PublicAddr()+"/hooks/gh", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("X-GitHub-Event", "issues")
	req.Header.Set("X-GitHub-Delivery", "trace-1")
	req.Header.Set("Traceparent", "00-"+traceID+"-"+parentID+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("ingest: %v %v", err, resp)
	}
	resp.Body.Close()

	var ingest, verify, commit, deliver []*tracepb.Span
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		ingest, verify, commit, deliver = recv.byName("ingest"), recv.byName("verify"), recv.byName("commit"), recv.byName("deliver crm")
		if len(ingest) > 0 && len(verify) > 0 && len(commit) > 0 && len(deliver) > 0 {
			break
		}
	}
	if len(ingest) != 1 || len(verify) != 1 || len(commit) != 1 || len(deliver) != 1 {
		t.Fatalf("spans: ingest %d verify %d commit %d deliver %d (bad requests: %v)", len(ingest), len(verify), len(commit), len(deliver), recv.bad)
	}
	in := ingest[0]
	if hex.EncodeToString(in.TraceId) != traceID || hex.EncodeToString(in.ParentSpanId) != parentID || in.Kind != tracepb.Span_SPAN_KIND_SERVER {
		t.Errorf("ingest span: trace %x parent %x kind %v; want the incoming traceparent continued", in.TraceId, in.ParentSpanId, in.Kind)
	}
	for name, s := range map[string]*tracepb.Span{"verify": verify[0], "commit": commit[0], "deliver": deliver[0]} {
		if hex.EncodeToString(s.TraceId) != traceID || hex.EncodeToString(s.ParentSpanId) != hex.EncodeToString(in.SpanId) {
			t.Errorf("%s span: trace %x parent %x; want a child of ingest %x", name, s.TraceId, s.ParentSpanId, in.SpanId)
		}
	}
	if deliver[0].Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("deliver span kind %v", deliver[0].Kind)
	}
	want := "00-" + traceID + "-" + hex.EncodeToString(deliver[0].SpanId) + "-01"
	if gotTraceparent != want {
		t.Errorf("the target got traceparent %q, want the deliver span %q", gotTraceparent, want)
	}
}
