package admin

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// maxEffects is how many result events an event's detail lists.
const maxEffects = 100

// EventView is an event as the API shows it: in lists without Envelope
// and Caused, in the detail with both.
type EventView struct {
	ID             string         `json:"id"`
	Source         string         `json:"source"`
	Tenant         string         `json:"tenant"`
	Type           string         `json:"type"`
	IdempotencyKey string         `json:"idempotency_key"`
	Status         string         `json:"status"`
	ReceivedAt     time.Time      `json:"received_at"`
	OccurredAt     time.Time      `json:"occurred_at"`
	CausationID    string         `json:"causation_id,omitempty"`
	TraceParent    string         `json:"traceparent,omitempty"`
	TraceID        string         `json:"trace_id,omitempty"`
	Deliveries     []DeliveryView `json:"deliveries"`
	// Caused lists the ids of the events this one caused (reply_to
	// results), detail only.
	Caused   []string        `json:"caused,omitempty"`
	Envelope json.RawMessage `json:"envelope,omitempty"`
}

// DeliveryView is a delivery with the Idempotency-Key its target receives
// (the same on every attempt and every replay).
type DeliveryView struct {
	relay.Delivery
	IdempotencyKey string `json:"idempotency_key"`
}

func deliveryView(d relay.Delivery) DeliveryView {
	if d.History == nil {
		d.History = []relay.Attempt{}
	}
	return DeliveryView{Delivery: d, IdempotencyKey: d.Key()}
}

func view(e *relay.Event, withEnvelope bool) EventView {
	v := EventView{
		ID: e.ID, Source: e.Source, Tenant: e.Tenant, Type: e.Type, IdempotencyKey: e.IdempotencyKey,
		Status: e.Status, ReceivedAt: e.ReceivedAt, OccurredAt: e.OccurredAt, CausationID: e.CausationID,
		TraceParent: e.TraceParent, TraceID: relay.TraceID(e.TraceParent), Deliveries: make([]DeliveryView, 0, len(e.Deliveries)),
	}
	for _, d := range e.Deliveries {
		v.Deliveries = append(v.Deliveries, deliveryView(d))
	}
	if withEnvelope {
		v.Envelope = relay.UpgradeEnvelope(e.Envelope) // events stored by earlier versions
	}
	return v
}

func (a *API) listEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	if !query(w, q, "status", "source", "tenant", "type", "since", "until", "limit", "cursor") {
		return
	}
	f := relay.EventFilter{Status: q.Get("status"), Source: q.Get("source"), Tenant: q.Get("tenant"), Type: q.Get("type")}
	var ok bool
	if f.Since, ok = timeParam(w, "since", q.Get("since")); !ok {
		return
	}
	if f.Until, ok = timeParam(w, "until", q.Get("until")); !ok {
		return
	}
	switch f.Status {
	case "", relay.EventQueued, relay.EventDelivered, relay.EventFailed, relay.EventDiscarded:
	default:
		writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("status %q: use queued, delivered, failed or discarded", f.Status))
		return
	}
	limit, ok := parseLimit(w, q.Get("limit"))
	if !ok {
		return
	}
	events, next, err := a.Store.Events(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := make([]EventView, len(events))
	for i := range events {
		out[i] = view(&events[i], false)
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": out, "next_cursor": next})
}

func (a *API) getEvent(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	e, err := a.Store.Event(r.Context(), ps.ByName("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	v := view(e, true)
	if v.Caused, err = a.Store.Effects(r.Context(), e.ID, maxEffects); err != nil {
		a.fail(w, err)
		return
	}
	writeJSONAbout(w, http.StatusOK, v, e.ID)
}

// RawView is a stored request: the body as sent (JSON, text, or base64
// when it is not UTF-8) and the headers, credentials redacted at ingest.
type RawView struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Headers    map[string][]string `json:"headers"`
	Body       json.RawMessage     `json:"body,omitempty"`
	BodyText   *string             `json:"body_text,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
}

func rawView(raw *relay.Raw) RawView {
	v := RawView{Method: raw.Method, Path: raw.Path, Headers: raw.Header}
	switch {
	case json.Valid(raw.Body):
		v.Body = raw.Body
	case utf8.Valid(raw.Body):
		s := string(raw.Body)
		v.BodyText = &s
	default:
		v.BodyBase64 = raw.Body
	}
	if v.Headers == nil {
		v.Headers = map[string][]string{}
	}
	return v
}

func (a *API) getRaw(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	raw, err := a.Store.Raw(r.Context(), ps.ByName("id"))
	if err != nil {
		if errors.Is(err, relay.ErrNotFound) {
			if _, err := a.Store.Event(r.Context(), ps.ByName("id")); err == nil {
				writeError(w, http.StatusNotFound, "not_found", "this event was stored without its raw request (a result event, or one imported without it); see GET /admin/v1/events/{id} for its envelope")
				return
			}
		}
		a.fail(w, err)
		return
	}
	writeJSONAbout(w, http.StatusOK, rawView(raw), ps.ByName("id"))
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
	q := r.URL.Query()
	if !query(w, q, "target") {
		return
	}
	id, target := ps.ByName("id"), q.Get("target")
	n, err := a.Store.Replay(r.Context(), id, target, a.Now())
	if err != nil && !(errors.Is(err, relay.ErrNotFound) && target != "") {
		a.fail(w, err)
		return
	}
	if err != nil || n == 0 {
		e, err2 := a.Store.Event(r.Context(), id)
		if err2 != nil {
			a.fail(w, cmp.Or(err, err2))
			return
		}
		writeError(w, http.StatusConflict, "nothing_to_replay", nothingToReplay(e, target))
		return
	}
	if a.Notify != nil {
		a.Notify()
	}
	a.Logger.Info("replay", slog.String(relay.LogKeyEventID, id), slog.String(relay.LogKeyTarget, target), slog.Int(relay.LogKeyDeliveries, n))
	writeJSON(w, http.StatusAccepted, map[string]any{"status": "replaying", "event_id": id, "replayed": n})
}

// nothingToReplay says why a replay of e (to target, when set) scheduled
// nothing, and what to do instead.
func nothingToReplay(e *relay.Event, target string) string {
	const backfill = "to send it now, backfill it as docs/runbooks/replay-and-backfill.md (\"Backfill a new target\") describes"
	if len(e.Deliveries) == 0 {
		return fmt.Sprintf("event %s has no delivery to replay: it was stored %s because no route matched it when it arrived (source %q, type %q); "+
			"add a route for it, then %s", e.ID, e.Status, e.Source, e.Type, strings.TrimPrefix(backfill, "to send it now, "))
	}
	var names, inFlight, skipped []string
	for _, d := range e.Deliveries {
		names = append(names, d.Target)
		if target != "" && d.Target != target {
			continue
		}
		switch d.Status {
		case relay.DeliveryInFlight:
			inFlight = append(inFlight, d.Target)
		case relay.DeliverySkipped:
			skipped = append(skipped, d.Target)
		}
	}
	if target != "" && !slices.Contains(names, target) {
		return fmt.Sprintf("event %s has no delivery to target %q; its targets: %s. A target gets the events routed to it when they arrive; %s",
			e.ID, target, strings.Join(names, ", "), backfill)
	}
	var why []string
	if len(inFlight) > 0 {
		why = append(why, "being sent now to "+strings.Join(inFlight, ", ")+" (replay it again once the attempt ends)")
	}
	if len(skipped) > 0 {
		why = append(why, "skipped by a dry-run route for "+strings.Join(skipped, ", ")+" (a dry run sends nothing; set dry_run: false on the route to send)")
	}
	return fmt.Sprintf("no delivery of event %s can be replayed now: %s", e.ID, strings.Join(why, "; "))
}
