// Package admin is the operators' HTTP API (default 127.0.0.1:8081): event
// lists and details, raw bodies, replay, the dead-letter queue, stats and
// health. Every /admin/v1 route needs "Authorization: Bearer <token>".
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// API serves the admin routes.
type API struct {
	Ledger  relay.Ledger
	Logger  *slog.Logger
	Now     func() time.Time
	Version string
	// Ready reports whether the sidecar can do its work (store open,
	// dispatcher running, not draining); nil means ready.
	Ready func() error
	// Notify wakes the dispatcher after a replay. May be nil.
	Notify func()
	// Targets reports per-target delivery state (breakers) for stats. May be nil.
	Targets func() any

	token  [32]byte
	router *httprouter.Router
}

// New returns the admin API guarded by token (compared in constant time).
func New(ledger relay.Ledger, token string, logger *slog.Logger) *API {
	a := &API{Ledger: ledger, Logger: logger, Now: time.Now, token: sha256.Sum256([]byte(token))}
	r := httprouter.New()
	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	r.GET("/admin/v1/events", a.auth(a.listEvents))
	r.GET("/admin/v1/events/:id", a.auth(a.getEvent))
	r.GET("/admin/v1/events/:id/raw", a.auth(a.getRaw))
	r.POST("/admin/v1/events/:id/replay", a.auth(a.replay))
	r.GET("/admin/v1/dlq", a.auth(a.listDead))
	r.POST("/admin/v1/dlq/replay", a.auth(a.replayDead))
	r.GET("/admin/v1/stats", a.auth(a.stats))
	// Profiles for operators, behind the token like the rest.
	r.GET("/debug/pprof/:name", a.auth(func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		switch ps.ByName("name") {
		case "profile":
			pprof.Profile(w, r)
		case "trace":
			pprof.Trace(w, r)
		default:
			pprof.Handler(ps.ByName("name")).ServeHTTP(w, r)
		}
	}))
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such admin route; see /admin/v1/events")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "wrong method for this route")
	})
	a.router = r
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// Handle adds a route (e.g. /metrics) to the admin listener.
func (a *API) Handle(method, path string, h http.Handler) { a.router.Handler(method, path, h) }

func (a *API) auth(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wprelay-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <admin token> (admin.token in wprelay.yaml, WPRELAY_ADMIN_TOKEN in wp-config.php)")
			return
		}
		h(w, r, ps)
	}
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": a.Version})
}

func (a *API) readyz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	if a.Ready != nil {
		if err := a.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "version": a.Version})
}

// eventView is an event as the API shows it.
type eventView struct {
	ID             string           `json:"id"`
	Source         string           `json:"source"`
	Tenant         string           `json:"tenant"`
	Type           string           `json:"type"`
	IdempotencyKey string           `json:"idempotency_key"`
	Status         string           `json:"status"`
	ReceivedAt     time.Time        `json:"received_at"`
	OccurredAt     time.Time        `json:"occurred_at"`
	CausationID    string           `json:"causation_id,omitempty"`
	TraceParent    string           `json:"traceparent,omitempty"`
	Deliveries     []relay.Delivery `json:"deliveries"`
	Envelope       json.RawMessage  `json:"envelope,omitempty"`
}

func view(e *relay.Event, withEnvelope bool) eventView {
	v := eventView{
		ID: e.ID, Source: e.Source, Tenant: e.Tenant, Type: e.Type, IdempotencyKey: e.IdempotencyKey,
		Status: e.Status, ReceivedAt: e.ReceivedAt, OccurredAt: e.OccurredAt, CausationID: e.CausationID,
		TraceParent: e.TraceParent, Deliveries: e.Deliveries,
	}
	if v.Deliveries == nil {
		v.Deliveries = []relay.Delivery{}
	}
	for i := range v.Deliveries {
		if v.Deliveries[i].History == nil {
			v.Deliveries[i].History = []relay.Attempt{}
		}
	}
	if withEnvelope {
		v.Envelope = e.Envelope
	}
	return v
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	f := relay.EventFilter{Status: q.Get("status"), Source: q.Get("source"), Tenant: q.Get("tenant"), Type: q.Get("type")}
	var err error
	if f.Since, err = parseTime(q.Get("since")); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "since: "+err.Error())
		return
	}
	if f.Until, err = parseTime(q.Get("until")); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "until: "+err.Error())
		return
	}
	switch f.Status {
	case "", relay.EventQueued, relay.EventDelivered, relay.EventFailed, relay.EventDiscarded:
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "status must be queued, delivered, failed or discarded")
		return
	}
	limit, ok := parseLimit(w, q.Get("limit"))
	if !ok {
		return
	}
	events, next, err := a.Ledger.Events(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]eventView, len(events))
	for i := range events {
		out[i] = view(&events[i], false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": next})
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	e, err := a.Ledger.Event(r.Context(), ps.ByName("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, view(e, true))
}

func (a *API) getRaw(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	raw, err := a.Ledger.Raw(r.Context(), ps.ByName("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	body := map[string]any{"method": raw.Method, "path": raw.Path, "headers": raw.Header}
	if json.Valid(raw.Body) {
		body["body"] = json.RawMessage(raw.Body)
	} else {
		body["body_text"] = string(raw.Body)
	}
	writeJSON(w, http.StatusOK, body)
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	n, err := a.Ledger.Replay(r.Context(), ps.ByName("id"), r.URL.Query().Get("target"), a.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	if n == 0 {
		writeError(w, http.StatusConflict, "nothing_to_replay", "the event has no delivery to replay (none matches ?target=, or they are in flight)")
		return
	}
	if a.Notify != nil {
		a.Notify()
	}
	a.Logger.Info("replay", slog.String("event_id", ps.ByName("id")), slog.String("target", r.URL.Query().Get("target")), slog.Int("deliveries", n))
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "replaying", "replayed": n})
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	f := relay.DeadFilter{Source: q.Get("source"), Target: q.Get("target")}
	var err error
	if f.Since, err = parseTime(q.Get("since")); err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "since: "+err.Error())
		return
	}
	limit, ok := parseLimit(w, q.Get("limit"))
	if !ok {
		return
	}
	dead, next, err := a.Ledger.DeadLetters(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]relay.Delivery, len(dead))
	for i, d := range dead {
		if d.History == nil {
			d.History = []relay.Attempt{}
		}
		if d.Reason == "" {
			d.Reason = d.LastError
		}
		out[i] = d
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next_cursor": next})
}

func (a *API) replayDead(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var body struct {
		Source string `json:"source"`
		Target string `json:"target"`
		Since  string `json:"since"`
	}
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", `the body must be a filter like {"source":"stripe","target":"wordpress","since":"2026-11-28T00:00:00Z"} or {}`)
			return
		}
	}
	since, err := parseTime(body.Since)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "since: "+err.Error())
		return
	}
	n, err := a.Ledger.ReplayDead(r.Context(), relay.DeadFilter{Source: body.Source, Target: body.Target, Since: since}, a.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	if n > 0 && a.Notify != nil {
		a.Notify()
	}
	a.Logger.Info("dlq replay", slog.String("source", body.Source), slog.String("target", body.Target), slog.Int("deliveries", n))
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}

func (a *API) stats(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	s, err := a.Ledger.Stats(r.Context())
	if err != nil {
		a.fail(w, err)
		return
	}
	out := map[string]any{
		"events": s.Events, "deliveries": s.Deliveries, "queue_depth": s.Pending, "dead_letters": s.Dead,
	}
	if !s.OldestDue.IsZero() {
		out["oldest_pending"] = s.OldestDue
		out["oldest_pending_age_seconds"] = a.Now().Sub(s.OldestDue).Seconds()
	}
	if a.Targets != nil {
		out["targets"] = a.Targets()
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, relay.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no such event; list events with GET /admin/v1/events")
		return
	}
	if strings.Contains(err.Error(), "cursor") {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	a.Logger.Error("admin", slog.String("error", err.Error()))
	writeError(w, http.StatusServiceUnavailable, "unavailable", "the store could not answer; see the sidecar's log")
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0), nil
	}
	return time.Time{}, errors.New("use RFC 3339 (2026-11-28T10:00:00Z) or unix seconds")
}

func parseLimit(w http.ResponseWriter, s string) (int, bool) {
	if s == "" {
		return 50, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 1000")
		return 0, false
	}
	return n, true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
