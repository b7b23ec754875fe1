// Package admin is the operators' HTTP API (default 127.0.0.1:8081): event
// lists and details, raw bodies, replay, the dead-letter queue, stats,
// export and import, and health. Every /admin/v1 route needs
// "Authorization: Bearer <token>"; /healthz, /readyz and /metrics do not.
//
// Errors are JSON {"error": code, "message": text}, the message saying
// what to do next. Codes: unauthorized (401), not_found (404), bad_request
// (400), nothing_to_replay (409), payload_too_large (413), unavailable
// (503), not_enabled (501), method_not_allowed (405).
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// API serves the admin routes. Set the exported fields before serving.
type API struct {
	Store Store
	// Backup copies the store (GET /admin/v1/backup); nil answers 501.
	Backup  Backuper
	Logger  *slog.Logger
	Now     func() time.Time
	Version string
	// Checks reports each readiness check (store open, dispatcher
	// running, not draining) as name → "ok" or what is wrong; nil means
	// ready.
	Checks func(ctx context.Context) map[string]string
	// Notify wakes the dispatcher after a replay or an import. May be nil.
	Notify func()
	// Targets reports each target's breaker state and attempt counts, for
	// stats. May be nil.
	Targets func() map[string]TargetHealth

	// Queue, Router and DedupeTTL serve POST /admin/v1/import: Queue
	// commits the imported events, Router gives each its deliveries
	// (today's routes, mirror copies and ordering) and DedupeTTL is how
	// long their idempotency keys are kept (default 168h). Import answers
	// 501 while Queue or Router is nil. Preview, when set, records the
	// request a dry-run route's delivery would have sent.
	Queue     relay.Queue
	Router    *relay.Router
	Preview   func(ev *relay.Event, d relay.Delivery) *relay.Request
	DedupeTTL time.Duration
	// MaxQueue refuses an import that would take the queue past it (the
	// ingest limit, limits.max_queue); 0 = no limit.
	MaxQueue int

	started time.Time
	token   [32]byte
	noToken bool
	router  *httprouter.Router
}

// New returns the admin API guarded by token (compared in constant time).
// An empty token refuses every /admin/v1 request.
func New(s Store, token string, logger *slog.Logger) *API {
	a := &API{Store: s, Logger: logger, Now: time.Now, DedupeTTL: 168 * time.Hour,
		token: sha256.Sum256([]byte(token)), noToken: token == ""}
	a.started = a.Now()
	r := httprouter.New()
	// No token: probes.
	r.GET("/healthz", a.healthz)
	r.GET("/readyz", a.readyz)
	// Events, their raw requests and replay.
	r.GET("/admin/v1/events", a.auth(a.listEvents))
	r.GET("/admin/v1/events/:id", a.auth(a.getEvent))
	r.GET("/admin/v1/events/:id/raw", a.auth(a.getRaw))
	r.POST("/admin/v1/events/:id/replay", a.auth(a.replay))
	// The dead-letter queue.
	r.GET("/admin/v1/dlq", a.auth(a.listDead))
	r.POST("/admin/v1/dlq/replay", a.auth(a.replayDead))
	// Stats, backfills.
	r.GET("/admin/v1/stats", a.auth(a.stats))
	r.GET("/admin/v1/export", a.auth(a.export))
	r.POST("/admin/v1/import", a.auth(a.importEvents))
	r.GET("/admin/v1/backup", a.auth(a.backup)) // a consistent copy of the store file (backup.go)
	// Profiles for operators, behind the token like the rest.
	r.GET("/debug/pprof/:name", a.auth(profile))
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such admin route; the API is under /admin/v1 (events, dlq, stats, export, import)")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "wrong method for this route: reads are GET, replays and imports POST")
	})
	a.router = r
	return a
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// Handle adds a route (e.g. /metrics) to the admin listener, without the
// token check.
func (a *API) Handle(method, path string, h http.Handler) { a.router.Handler(method, path, h) }

func (a *API) auth(h httprouter.Handle) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(tok))
		if a.noToken || !ok || subtle.ConstantTimeCompare(sum[:], a.token[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wprelay-admin"`)
			msg := "send Authorization: Bearer <admin token>: the token is admin.token in wprelay.yaml " +
				"(WPRELAY_ADMIN_TOKEN for the CLI and in wp-config.php); check that both sides hold the same value"
			if !ok {
				msg = "no bearer token: " + msg
			}
			writeError(w, http.StatusUnauthorized, "unauthorized", msg)
			return
		}
		h(w, r, ps)
	}
}

func profile(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	switch ps.ByName("name") {
	case "profile":
		pprof.Profile(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Handler(ps.ByName("name")).ServeHTTP(w, r)
	}
}

func (a *API) healthz(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "version": a.Version})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if a.Checks != nil {
		checks := a.Checks(r.Context())
		status, code := "ready", http.StatusOK
		for _, v := range checks {
			if v != "ok" {
				status, code = "unavailable", http.StatusServiceUnavailable
			}
		}
		writeJSON(w, code, map[string]any{"status": status, "version": a.Version, "checks": checks})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "version": a.Version})
}

// fail answers a store error.
func (a *API) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, relay.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no such event; list events with GET /admin/v1/events (wprelay events list)")
	case errors.Is(err, relay.ErrInvalidCursor):
		writeError(w, http.StatusBadRequest, "bad_request", "invalid cursor: pass back next_cursor exactly as a listing returned it, with the same filters, or start again without one")
	default:
		a.Logger.Error("admin", slog.String(relay.LogKeyError, err.Error()))
		writeError(w, http.StatusServiceUnavailable, "unavailable", "the store could not answer; see the sidecar's log, then retry")
	}
}

// query checks that q has only the allowed parameters, so that a typo
// (?staus=failed) is an error rather than an unfiltered list.
func query(w http.ResponseWriter, q url.Values, allowed ...string) bool {
	for k := range q {
		known := false
		for _, a := range allowed {
			if k == a {
				known = true
				break
			}
		}
		if !known {
			writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("unknown query parameter %q; this route takes %s", k, strings.Join(allowed, ", ")))
			return false
		}
	}
	return true
}

// timeParam parses a time filter: RFC 3339 or unix seconds.
func timeParam(w http.ResponseWriter, name, s string) (time.Time, bool) {
	t, err := parseTime(s)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", name+": "+err.Error())
		return time.Time{}, false
	}
	return t, true
}

// parseTime parses a time as the admin API takes it: RFC 3339
// (2026-11-28T10:00:00Z) or unix seconds; "" is the zero time.
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
	return time.Time{}, fmt.Errorf("%q is not a time: use RFC 3339 (2026-11-28T10:00:00Z) or unix seconds", s)
}

func parseLimit(w http.ResponseWriter, s string) (int, bool) {
	if s == "" {
		return 50, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		writeError(w, http.StatusBadRequest, "bad_request", "limit must be 1 to 1000; page with next_cursor for more")
		return 0, false
	}
	return n, true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"error": code, "message": msg})
}

// writeJSON encodes v before it writes the status, so that a value that
// cannot be encoded is a 500 that says so, never a 200 with an empty body.
func writeJSON(w http.ResponseWriter, status int, v any) {
	writeJSONAbout(w, status, v, "")
}

// writeJSONAbout is writeJSON for an answer about event id: a 500 names it.
func writeJSONAbout(w http.ResponseWriter, status int, v any, id string) {
	b, err := encode(v)
	if err != nil {
		status = http.StatusInternalServerError
		msg := "the answer could not be encoded as JSON: " + err.Error()
		if id != "" {
			msg = "event " + id + " could not be encoded as JSON (" + err.Error() + "; it was stored before limits.max_depth refused such bodies); " +
				"its deliveries are listed by GET /admin/v1/dlq and it is deleted by retention"
		}
		b, _ = json.Marshal(map[string]string{"error": "unencodable", "message": msg, "id": id})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// encode marshals v and checks that JSON parsers can read the result:
// encoding/json checks a json.RawMessage (an envelope) on its own, so a
// body nested as deep as parsers allow passes, and the answer around it
// is one level too deep for every client.
func encode(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err == nil && !json.Valid(b) {
		err = errors.New("nested deeper than JSON parsers accept (10,000 levels)")
	}
	return b, err
}
