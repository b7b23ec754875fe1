package deliver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/relaytest"
)

// recorder is a target on loopback that records every request and answers
// with script(n) for its n-th request (from 1).
type recorder struct {
	srv    *httptest.Server
	mu     sync.Mutex
	reqs   []recorded
	script func(n int, r recorded) (int, string)
	delay  func(r recorded) time.Duration
	// per subject: in flight now and the most at once
	inflight map[string]int
	peak     map[string]int
	all, max atomic.Int32
}

type recorded struct {
	Header http.Header
	Body   []byte
	Env    map[string]any
	At     time.Time
}

func (r recorded) subject() string {
	s, _ := r.Env["subject"].(map[string]any)
	id, _ := s["id"].(string)
	return id
}

func newRecorder(t *testing.T, script func(n int, r recorded) (int, string)) *recorder {
	t.Helper()
	rc := &recorder{script: script, inflight: map[string]int{}, peak: map[string]int{}}
	if rc.script == nil {
		rc.script = func(int, recorded) (int, string) { return 200, `{"ok":true}` }
	}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *recorder) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{Header: r.Header.Clone(), Body: body, At: time.Now()}
	_ = json.Unmarshal(body, &rec.Env)
	subj := rec.subject()
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, rec)
	n := len(rc.reqs)
	rc.inflight[subj]++
	rc.peak[subj] = max(rc.peak[subj], rc.inflight[subj])
	rc.mu.Unlock()
	if all := rc.all.Add(1); all > rc.max.Load() {
		rc.max.Store(all)
	}
	if rc.delay != nil {
		time.Sleep(rc.delay(rec))
	}
	status, answer := rc.script(n, rec)
	rc.mu.Lock()
	rc.inflight[subj]--
	rc.mu.Unlock()
	rc.all.Add(-1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, answer)
}

func (rc *recorder) requests() []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs...)
}

// incoming is an event of source src about subject (type post) that
// occurred at occurred, with a delivery to each target.
func incoming(src, subject string, occurred time.Time, targets ...string) relay.Incoming {
	id := uuid.Must(uuid.NewV7()).String()
	now := time.Now()
	ev := relay.Event{ID: id, Source: src, Type: "post.updated", IdempotencyKey: src + "::" + id, ReceivedAt: now, OccurredAt: occurred}
	env := relay.NewEnvelope(&ev, relay.Normal{Subject: relay.Subject{ID: subject, Type: "post"}}, json.RawMessage(`{"title":"T `+subject+`","n":"`+occurred.Format(time.RFC3339Nano)+`"}`))
	ev.Envelope, _ = json.Marshal(env)
	for _, tg := range targets {
		ev.Deliveries = append(ev.Deliveries, relay.Delivery{Target: tg, Status: relay.DeliveryPending, NextAt: now, CreatedAt: now})
	}
	return relay.Incoming{Event: ev, Raw: &relay.Raw{}, KeyExpires: now.Add(time.Hour)}
}

func add(t *testing.T, db *relaytest.MemStore, ins ...relay.Incoming) []string {
	t.Helper()
	outs, err := db.Enqueue(t.Context(), &relay.Batch{Events: ins})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, o := range outs {
		ids = append(ids, o.ID)
	}
	return ids
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// A 2xx JSON answer of a reply_to target becomes a result event, stored
// before the delivery succeeds, once, however often the target is asked.
func TestDispatcher_ReplyTo_ResultOnce(t *testing.T) {
	ai := newRecorder(t, func(n int, _ recorded) (int, string) {
		if n <= 2 {
			return 503, `{"error":"busy"}`
		}
		return 200, fmt.Sprintf(`{"title":"Summary","summary":"Short, take %d."}`, n)
	})
	results := newRecorder(t, nil)
	db := mustDB(t)
	d := New(db, []Target{
		{Name: "ai", Kind: "http", URL: ai.srv.URL, AllowPrivate: true, ReplyTo: "results", Auth: Auth{Bearer: "sk-test"}},
		{Name: "results", Kind: "wordpress", URL: results.srv.URL},
	}, quiet())
	d.BaseDelay = 10 * time.Millisecond
	run(t, d)
	in := incoming("site", "123", time.Now(), "ai")
	id := add(t, db, in)[0]
	d.Notify()
	del := waitDelivery(t, db, id, "ai", relay.DeliverySucceeded)
	if del.Attempts != 3 || del.ResultID == "" {
		t.Fatalf("ai delivery = %+v, want 3 attempts and a result id", del)
	}
	res, err := db.Event(t.Context(), del.ResultID)
	if err != nil {
		t.Fatal(err)
	}
	var env relay.Envelope
	_ = json.Unmarshal(res.Envelope, &env)
	if res.Source != "target:ai" || res.Type != "post.updated.result" || res.CausationID != id ||
		res.IdempotencyKey != "target:ai:"+id || env.Subject != (relay.Subject{ID: "123", Type: "post"}) ||
		env.CausationID != id || !strings.Contains(string(env.Data), "take 3") {
		t.Fatalf("result event = %+v\nenvelope %s", res, res.Envelope)
	}
	waitDelivery(t, db, res.ID, "results", relay.DeliverySucceeded)
	raw, err := db.Raw(t.Context(), res.ID)
	if err != nil || !strings.Contains(string(raw.Body), "take 3") {
		t.Fatalf("result raw = %+v, %v", raw, err)
	}

	// Asked again (a replay): the target answers anew, but the result
	// exists already; the delivery points at it.
	if _, err := db.Replay(t.Context(), id, "ai", time.Now()); err != nil {
		t.Fatal(err)
	}
	d.Notify()
	waitFor(t, func() bool { return len(ai.requests()) == 4 })
	again := waitDelivery(t, db, id, "ai", relay.DeliverySucceeded)
	if again.ResultID != del.ResultID {
		t.Fatalf("result id after replay = %s, want %s", again.ResultID, del.ResultID)
	}
	evs, _, _ := db.Events(t.Context(), relay.EventFilter{Source: "target:ai"}, "", 10)
	if len(evs) != 1 {
		t.Fatalf("%d result events, want 1", len(evs))
	}
	if got := len(results.requests()); got != 1 {
		t.Fatalf("the results target got %d requests, want 1", got)
	}
	for _, r := range results.requests() {
		if r.Header.Get("Authorization") == "Bearer sk-test" || strings.Contains(string(r.Body), "sk-test") {
			t.Fatal("the AI key reached the results target")
		}
	}
}

// Answers that are not JSON objects make no result; the delivery succeeds.
func TestDispatcher_ReplyTo_NotAnObject(t *testing.T) {
	ai := newRecorder(t, func(int, recorded) (int, string) { return 200, `["a","b"]` })
	db := mustDB(t)
	d := New(db, []Target{{Name: "ai", Kind: "http", URL: ai.srv.URL, AllowPrivate: true, ReplyTo: "results"},
		{Name: "results", Kind: "http", URL: ai.srv.URL, AllowPrivate: true}}, quiet())
	run(t, d)
	id := add(t, db, incoming("site", "1", time.Now(), "ai"))[0]
	d.Notify()
	del := waitDelivery(t, db, id, "ai", relay.DeliverySucceeded)
	if del.ResultID != "" || !strings.Contains(del.LastError, "not a JSON object") {
		t.Fatalf("delivery = %+v", del)
	}
}

// Answers that repeat a member name, or nest deeper than MaxDepth, make
// no result either (they would store what ingest refuses).
func TestDispatcher_ReplyTo_HostileAnswer(t *testing.T) {
	for _, tc := range []struct{ name, answer, note string }{
		{"repeated name", `{"summary":"a","summary":"b"}`, "repeats the member name"},
		{"too deep", `{"a":` + strings.Repeat("[", 200) + strings.Repeat("]", 200) + `}`, "levels"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ai := newRecorder(t, func(int, recorded) (int, string) { return 200, tc.answer })
			db := mustDB(t)
			d := New(db, []Target{{Name: "ai", Kind: "http", URL: ai.srv.URL, AllowPrivate: true, ReplyTo: "results"},
				{Name: "results", Kind: "http", URL: ai.srv.URL, AllowPrivate: true}}, quiet())
			run(t, d)
			id := add(t, db, incoming("site", "1", time.Now(), "ai"))[0]
			d.Notify()
			del := waitDelivery(t, db, id, "ai", relay.DeliverySucceeded)
			if del.ResultID != "" || !strings.Contains(del.LastError, tc.note) {
				t.Fatalf("delivery = %+v", del)
			}
		})
	}
}

// Each kind of auth reaches the target as configured; the template makes
// the body.
func TestDispatcher_AuthAndTemplate(t *testing.T) {
	rc := newRecorder(t, nil)
	tp, err := ParseTemplate("crm", `{"title": {{ quote .data.title }}, "kind": {{ quote .type }}}`)
	if err != nil {
		t.Fatal(err)
	}
	db := mustDB(t)
	d := New(db, []Target{
		{Name: "bearer", Kind: "http", URL: rc.srv.URL + "/bearer", AllowPrivate: true, Auth: Auth{Bearer: "tok-1"}, Template: tp,
			Headers: map[string]string{"X-Team-Key": "team-secret", "X-Client": "wprelay"}, SecretHeaders: []string{"X-Team-Key"}},
		{Name: "basic", Kind: "http", URL: rc.srv.URL + "/basic", AllowPrivate: true, Auth: Auth{BasicUser: "relay", BasicPassword: "pw"}},
		{Name: "hmac", Kind: "http", URL: rc.srv.URL + "/hmac", AllowPrivate: true,
			Auth: Auth{HMAC: &HMACAuth{Key: []byte("k"), Header: "X-Sig", Prefix: "sha256=", TimestampHeader: "X-Ts"}}},
		{Name: "jwt", Kind: "http", URL: rc.srv.URL + "/jwt", AllowPrivate: true, Signer: Signer{JWTSecret: []byte("jwt-secret-jwt-secret-jwt-secret!")}},
	}, quiet())
	run(t, d)
	id := add(t, db, incoming("site", "9", time.Now(), "bearer", "basic", "hmac", "jwt"))[0]
	d.Notify()
	for _, tg := range []string{"bearer", "basic", "hmac", "jwt"} {
		waitDelivery(t, db, id, tg, relay.DeliverySucceeded)
	}
	by := map[string]recorded{}
	for _, r := range rc.requests() {
		by[strings.TrimPrefix(r.Header.Get("Idempotency-Key"), id+":")] = r
	}
	if r := by["bearer"]; r.Header.Get("Authorization") != "Bearer tok-1" || r.Header.Get("X-Team-Key") != "team-secret" ||
		string(r.Body) != `{"title":"T 9","kind":"post.updated"}` {
		t.Errorf("bearer: %v %s", r.Header, r.Body)
	}
	if r := by["basic"]; r.Header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte("relay:pw")) {
		t.Errorf("basic: %v", r.Header)
	}
	r := by["hmac"]
	m := hmac.New(sha256.New, []byte("k"))
	m.Write([]byte(r.Header.Get("X-Ts") + "."))
	m.Write(r.Body)
	if r.Header.Get("X-Sig") != "sha256="+hex.EncodeToString(m.Sum(nil)) || r.Header.Get("X-Ts") == "" {
		t.Errorf("hmac: %v", r.Header)
	}
	if !strings.HasPrefix(by["jwt"].Header.Get("Authorization"), "Bearer ey") {
		t.Errorf("jwt: %v", by["jwt"].Header)
	}

	// What a dry run records: the same request, credentials redacted.
	ev, _ := db.Event(t.Context(), id)
	req := d.Preview(ev, relay.Delivery{Target: "bearer"})
	if req.URL != rc.srv.URL+"/bearer" || req.Method != "POST" || string(req.Body) != `{"title":"T 9","kind":"post.updated"}` ||
		req.Header["Authorization"][0] != "REDACTED" || req.Header["X-Team-Key"][0] != "REDACTED" ||
		req.Header["X-Client"][0] != "wprelay" || req.Header["Idempotency-Key"][0] != id+":bearer" {
		t.Errorf("preview = %+v", req)
	}
	if h := d.Preview(ev, relay.Delivery{Target: "hmac"}).Header; h["X-Sig"][0] != "REDACTED" || h["X-Ts"][0] == "REDACTED" {
		t.Errorf("hmac preview headers = %v", h)
	}
	if p := d.Preview(ev, relay.Delivery{Target: "nope"}); p.Error == "" {
		t.Errorf("preview of an unknown target: %+v", p)
	}
}

// A body the template cannot make dead-letters the delivery with the
// reason; nothing is sent, and the target's breaker does not count it.
func TestDispatcher_TemplateErrorDeadLetters(t *testing.T) {
	rc := newRecorder(t, nil)
	tp, err := ParseTemplate("t", `{"x": {{ json .data.post.title }}}`)
	if err != nil {
		t.Fatal(err)
	}
	db := mustDB(t)
	br := &Breaker{Failures: 1}
	d := New(db, []Target{{Name: "t", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, Template: tp, Breaker: br}}, quiet())
	run(t, d)
	id := add(t, db, incoming("site", "1", time.Now(), "t"))[0] // data has no post
	d.Notify()
	del := waitDelivery(t, db, id, "t", relay.DeliveryDead)
	if !strings.HasPrefix(del.Reason, "template:") || !strings.Contains(del.Reason, "title") || len(rc.requests()) != 0 {
		t.Fatalf("delivery = %+v; %d requests", del, len(rc.requests()))
	}
	if s, _, _ := br.State(); s != BreakerClosed {
		t.Fatalf("breaker %s after a template error", s)
	}
	dead, _, _ := db.DeadLetters(t.Context(), relay.DeadFilter{}, "", 10)
	if len(dead) != 1 || dead[0].Reason != del.Reason {
		t.Fatalf("dead letters = %+v", dead)
	}
}

// Out-of-order arrivals for one subject are delivered in occurred_at
// order, one at a time per subject, while other subjects go in parallel.
func TestDispatcher_Ordering_UnderConcurrency(t *testing.T) {
	rc := newRecorder(t, nil)
	rc.delay = func(recorded) time.Duration { return time.Duration(5+rand.IntN(15)) * time.Millisecond }
	db := mustDB(t)
	d := New(db, []Target{{Name: "crm", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, Concurrency: 8}}, quiet())
	base := time.Now().Add(-time.Hour)
	const subjects, perSubject = 4, 6
	var ins []relay.Incoming
	for s := range subjects {
		for i := range perSubject {
			in := incoming("shop", fmt.Sprint(s), base.Add(time.Duration(i)*time.Second), "crm")
			in.Event.Deliveries[0].Order = &relay.Order{Key: fmt.Sprintf("post:%d", s)}
			ins = append(ins, in)
		}
	}
	// They arrive shuffled, in several requests, before delivery starts.
	rand.Shuffle(len(ins), func(i, j int) { ins[i], ins[j] = ins[j], ins[i] })
	for i := 0; i < len(ins); i += 4 {
		add(t, db, ins[i:i+4]...)
	}
	run(t, d)
	d.Notify()
	waitFor(t, func() bool {
		s, _ := db.Stats(t.Context())
		return s.Pending == 0
	})
	got := map[string][]string{}
	for _, r := range rc.requests() {
		got[r.subject()] = append(got[r.subject()], r.Env["data"].(map[string]any)["n"].(string))
		if r.Header.Get("X-Wprelay-Out-Of-Order") != "" {
			t.Errorf("subject %s: a delivery marked out of order", r.subject())
		}
	}
	for s := range subjects {
		seq := got[fmt.Sprint(s)]
		for i := range seq {
			if want := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano); seq[i] != want {
				t.Errorf("subject %d: delivered %v, not in occurred_at order", s, seq)
				break
			}
		}
		if len(seq) != perSubject {
			t.Errorf("subject %d: %d deliveries, want %d", s, len(seq), perSubject)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for s, p := range rc.peak {
		if p > 1 {
			t.Errorf("subject %s: %d deliveries in flight at once", s, p)
		}
	}
	if rc.max.Load() < 2 {
		t.Errorf("at most %d requests in flight: subjects were not delivered in parallel", rc.max.Load())
	}
}

// Events arriving while their subject's newer events are being delivered:
// each subject's deliveries go one at a time, in occurred_at order except
// for those marked X-Wprelay-Out-Of-Order, which are exactly the ones older
// than one delivered before them.
func TestDispatcher_Ordering_ArrivingWhileDelivering(t *testing.T) {
	rc := newRecorder(t, nil)
	rc.delay = func(recorded) time.Duration { return time.Duration(2+rand.IntN(8)) * time.Millisecond }
	db := mustDB(t)
	d := New(db, []Target{{Name: "crm", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, Concurrency: 8}}, quiet())
	run(t, d)
	base := time.Now().Add(-time.Hour)
	var ins []relay.Incoming
	for s := range 3 {
		for i := range 8 {
			in := incoming("shop", fmt.Sprint(s), base.Add(time.Duration(i)*time.Second), "crm")
			in.Event.Deliveries[0].Order = &relay.Order{Key: fmt.Sprintf("post:%d", s)}
			ins = append(ins, in)
		}
	}
	rand.Shuffle(len(ins), func(i, j int) { ins[i], ins[j] = ins[j], ins[i] })
	for i := 0; i < len(ins); i += 3 {
		add(t, db, ins[i:i+3]...)
		d.Notify()
		time.Sleep(3 * time.Millisecond)
	}
	waitFor(t, func() bool {
		s, _ := db.Stats(t.Context())
		return s.Pending == 0
	})
	newest := map[string]string{}
	for _, r := range rc.requests() {
		n := r.Env["data"].(map[string]any)["n"].(string)
		marked := r.Header.Get("X-Wprelay-Out-Of-Order") == "true"
		if stale := n < newest[r.subject()]; stale != marked {
			t.Errorf("subject %s: %s after %s delivered, marked %v", r.subject(), n, newest[r.subject()], marked)
		}
		newest[r.subject()] = max(newest[r.subject()], n)
	}
	if got := len(rc.requests()); got != len(ins) {
		t.Errorf("%d deliveries, want %d", got, len(ins))
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for s, p := range rc.peak {
		if p > 1 {
			t.Errorf("subject %s: %d deliveries in flight at once", s, p)
		}
	}
}

// Events all queued before delivery starts come out strictly in order;
// one arriving after a newer one was delivered is marked.
func TestDispatcher_Ordering_InOrderThenMarked(t *testing.T) {
	rc := newRecorder(t, nil)
	db := mustDB(t)
	d := New(db, []Target{{Name: "crm", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, Concurrency: 4}}, quiet())
	base := time.Now().Add(-time.Hour)
	var ins []relay.Incoming
	for _, i := range []int{3, 1, 4, 0, 2} {
		in := incoming("shop", "7", base.Add(time.Duration(i)*time.Second), "crm")
		in.Event.Deliveries[0].Order = &relay.Order{Key: "post:7"}
		ins = append(ins, in)
	}
	add(t, db, ins...)
	run(t, d)
	d.Notify()
	waitFor(t, func() bool { return len(rc.requests()) == 5 })
	for i, r := range rc.requests() {
		want := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		if n := r.Env["data"].(map[string]any)["n"]; n != want || r.Header.Get("X-Wprelay-Out-Of-Order") != "" {
			t.Fatalf("request %d: n %v (out of order %q), want %s", i, n, r.Header.Get("X-Wprelay-Out-Of-Order"), want)
		}
	}
	late := incoming("shop", "7", base.Add(1500*time.Millisecond), "crm")
	late.Event.Deliveries[0].Order = &relay.Order{Key: "post:7"}
	id := add(t, db, late)[0]
	d.Notify()
	del := waitDelivery(t, db, id, "crm", relay.DeliverySucceeded)
	reqs := rc.requests()
	if !del.OutOfOrder || reqs[len(reqs)-1].Header.Get("X-Wprelay-Out-Of-Order") != "true" {
		t.Fatalf("late delivery = %+v, header %q", del, reqs[len(reqs)-1].Header.Get("X-Wprelay-Out-Of-Order"))
	}
}

// Coalescing: of a subject's pending deliveries only the newest is sent.
func TestDispatcher_Coalesce(t *testing.T) {
	rc := newRecorder(t, nil)
	db := mustDB(t)
	d := New(db, []Target{{Name: "crm", Kind: "http", URL: rc.srv.URL, AllowPrivate: true}}, quiet())
	base := time.Now().Add(-time.Hour)
	var ins []relay.Incoming
	for _, i := range []int{2, 4, 0, 3, 1} {
		in := incoming("shop", "5", base.Add(time.Duration(i)*time.Second), "crm")
		in.Event.Deliveries[0].Order = &relay.Order{Key: "post:5", Coalesce: true}
		ins = append(ins, in)
	}
	ids := add(t, db, ins...)
	run(t, d)
	d.Notify()
	waitDelivery(t, db, ids[1], "crm", relay.DeliverySucceeded) // occurred last
	for i, id := range ids {
		if i != 1 {
			if del := waitDelivery(t, db, id, "crm", relay.DeliverySkipped); !strings.Contains(del.Reason, "coalesced") {
				t.Errorf("reason %q", del.Reason)
			}
		}
	}
	if reqs := rc.requests(); len(reqs) != 1 || reqs[0].Env["id"] != ids[1] {
		t.Fatalf("%d requests, want only the newest", len(reqs))
	}
}

// A mirror copy that fails never changes the event's status.
func TestDispatcher_MirrorFailureIgnored(t *testing.T) {
	main := newRecorder(t, nil)
	staging := newRecorder(t, func(int, recorded) (int, string) { return 500, `{}` })
	db := mustDB(t)
	d := New(db, []Target{{Name: "main", Kind: "http", URL: main.srv.URL, AllowPrivate: true},
		{Name: "staging", Kind: "http", URL: staging.srv.URL, AllowPrivate: true, MaxAttempts: 2}}, quiet())
	d.BaseDelay = time.Millisecond
	run(t, d)
	in := incoming("site", "1", time.Now(), "main", "staging")
	in.Event.Deliveries[1].Mirror = true
	id := add(t, db, in)[0]
	d.Notify()
	waitDelivery(t, db, id, "main", relay.DeliverySucceeded)
	waitDelivery(t, db, id, "staging", relay.DeliveryDead)
	if ev, _ := db.Event(t.Context(), id); ev.Status != relay.EventDelivered {
		t.Fatalf("event %s with a dead mirror, want delivered", ev.Status)
	}
	if r := staging.requests(); len(r) != 2 || r[0].Header.Get("X-Wprelay-Mirror") != "true" {
		t.Fatalf("staging got %d requests", len(r))
	}
}

// clock is real time plus an offset that tests move forward.
type clock struct{ off atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *clock) Advance(d time.Duration) { c.off.Add(int64(d)) }

// Past the daily budget, deliveries wait (pending, not dead); the count
// survives a restart; the next UTC day they go out.
func TestDispatcher_DailyBudget(t *testing.T) {
	rc := newRecorder(t, nil)
	db := mustDB(t)
	clk := &clock{}
	// Start near the middle of a UTC day, so that the test does not cross
	// midnight by itself.
	now := time.Now().UTC()
	noon := time.Date(now.Year(), now.Month(), now.Day(), 12, 0, 0, 0, time.UTC)
	clk.Advance(noon.Sub(now))
	newD := func() (*Dispatcher, context.CancelFunc, func()) {
		d := New(db, []Target{{Name: "ai", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, DailyBudget: 3, Concurrency: 2}}, quiet())
		d.Now, d.Counters = clk.Now, db
		ctx, cancel := context.WithCancel(context.Background())
		return d, cancel, d.Start(ctx)
	}
	d, cancel, wait := newD()
	var ids []string
	for i := range 5 {
		in := incoming("site", fmt.Sprint(i), time.Now(), "ai")
		in.Event.Deliveries[0].NextAt = clk.Now()
		ids = append(ids, add(t, db, in)...)
	}
	d.Notify()
	waitFor(t, func() bool { return len(rc.requests()) == 3 })
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("%d requests with a budget of 3", n)
	}
	st := d.Targets()["ai"]
	if st.Budget == nil || st.Budget.Used != 3 || st.Budget.Remaining != 0 || !st.Budget.Exhausted || st.Waiting != "budget" ||
		!st.Budget.ResetsAt.Equal(noon.Add(12*time.Hour)) {
		t.Fatalf("state = %+v budget %+v", st, st.Budget)
	}
	if b := d.Budgets()["ai"]; b.Used != 3 {
		t.Fatalf("Budgets = %+v", b)
	}
	s, _ := db.Stats(t.Context())
	if s.Pending != 2 || s.Dead != 0 {
		t.Fatalf("stats = %+v, want 2 waiting, none dead", s)
	}
	cancel()
	wait()

	// A restart does not bring a fresh budget.
	d, cancel, wait = newD()
	defer func() { cancel(); wait() }()
	d.Notify()
	time.Sleep(200 * time.Millisecond)
	if n := len(rc.requests()); n != 3 {
		t.Fatalf("%d requests after a restart, want still 3", n)
	}
	if b := d.Budgets()["ai"]; b.Used != 3 || b.Remaining != 0 {
		t.Fatalf("budget after restart = %+v", b)
	}
	// The next day, the rest go out.
	clk.Advance(13 * time.Hour)
	d.Notify()
	waitFor(t, func() bool { return len(rc.requests()) == 5 })
	for _, id := range ids {
		waitDelivery(t, db, id, "ai", relay.DeliverySucceeded)
	}
	if b := d.Budgets()["ai"]; b.Used != 2 || b.Remaining != 1 {
		t.Fatalf("budget the next day = %+v", b)
	}
}

// rate_per_minute spaces requests evenly.
func TestDispatcher_RatePerMinute(t *testing.T) {
	rc := newRecorder(t, nil)
	db := mustDB(t)
	d := New(db, []Target{{Name: "ai", Kind: "http", URL: rc.srv.URL, AllowPrivate: true, RatePerMinute: 600, Concurrency: 4}}, quiet())
	for i := range 6 {
		add(t, db, incoming("site", fmt.Sprint(i), time.Now(), "ai"))
	}
	run(t, d)
	d.Notify()
	waitFor(t, func() bool { return len(rc.requests()) == 6 })
	reqs := rc.requests()
	// 600/min is one every 100 ms: the 5 after the first (which may wait
	// for its connection) span at least 400 ms.
	if span := reqs[5].At.Sub(reqs[1].At); span < 350*time.Millisecond {
		t.Fatalf("requests 2 to 6 within %v at 600/min", span)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Secret values (from ${…} in the config) never reach what is recorded:
// not a dry run's body or URL, not an answer that echoes them, not errors.
func TestDispatcher_SecretsScrubbed(t *testing.T) {
	const key = "sk-body-secret-123"
	rc := newRecorder(t, func(int, recorded) (int, string) {
		return 400, `{"error":"invalid key sk-body-secret-123"}`
	})
	tp, err := ParseTemplate("t", `{"api_key": "`+key+`", "q": {{ quote .type }}}`)
	if err != nil {
		t.Fatal(err)
	}
	db := mustDB(t)
	d := New(db, []Target{{Name: "t", Kind: "http", URL: rc.srv.URL + "/?key=" + key, AllowPrivate: true, Template: tp,
		Redact: []string{key, "short"}}}, quiet())
	run(t, d)
	id := add(t, db, incoming("site", "1", time.Now(), "t"))[0]
	d.Notify()
	del := waitDelivery(t, db, id, "t", relay.DeliveryDead)
	ev, _ := db.Event(t.Context(), id)
	req := d.Preview(ev, relay.Delivery{Target: "t"})
	all, _ := json.Marshal(map[string]any{"delivery": del, "preview": req})
	if strings.Contains(string(all), key) || !strings.Contains(string(req.Body), `"api_key":"REDACTED"`) || !json.Valid(req.Body) {
		t.Fatalf("a secret was recorded: %s", all)
	}
	if got := rc.requests()[0]; !strings.Contains(string(got.Body), key) {
		t.Fatalf("the target did not get the key: %s", got.Body)
	}
}
