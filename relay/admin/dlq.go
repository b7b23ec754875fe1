package admin

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// DeadView is a dead delivery with what an operator needs to pick it out:
// its event's source, tenant and type, and why it died.
type DeadView struct {
	DeliveryView
	Source string `json:"source"`
	Tenant string `json:"tenant"`
	Type   string `json:"type"`
}

func (a *API) listDead(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	if !query(w, q, "source", "target", "since", "until", "limit", "cursor") {
		return
	}
	f := relay.DeadFilter{Source: q.Get("source"), Target: q.Get("target")}
	var ok bool
	if f.Since, ok = timeParam(w, "since", q.Get("since")); !ok {
		return
	}
	if f.Until, ok = timeParam(w, "until", q.Get("until")); !ok {
		return
	}
	limit, ok := parseLimit(w, q.Get("limit"))
	if !ok {
		return
	}
	dead, next, err := a.Store.DeadLetters(r.Context(), f, q.Get("cursor"), limit)
	if err != nil {
		a.fail(w, err)
		return
	}
	events := map[string]*relay.Event{}
	out := make([]DeadView, len(dead))
	for i, d := range dead {
		if d.Reason == "" {
			d.Reason = d.LastError
		}
		out[i] = DeadView{DeliveryView: deliveryView(d)}
		e, seen := events[d.EventID]
		if !seen {
			e, _ = a.Store.Event(r.Context(), d.EventID) // pruned meanwhile: nil
			events[d.EventID] = e
		}
		if e != nil {
			out[i].Source, out[i].Tenant, out[i].Type = e.Source, e.Tenant, e.Type
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"deliveries": out, "next_cursor": next})
}

// DeadReplay is the filter POST /admin/v1/dlq/replay takes ({} = every
// dead delivery). Until and Limit let a client replay a large queue in
// bounded steps: Until (the time it started) keeps deliveries that die
// again meanwhile from being replayed twice.
type DeadReplay struct {
	Source string `json:"source"`
	Target string `json:"target"`
	Since  string `json:"since"`
	Until  string `json:"until"`
	Limit  int    `json:"limit"`
}

func (a *API) replayDead(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	var body DeadReplay
	if r.ContentLength != 0 {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, "bad_request", `the body must be a filter like {"source":"stripe","target":"wordpress","since":"2026-11-28T00:00:00Z"}, or {} for every dead delivery: `+err.Error())
			return
		}
	}
	f := relay.DeadFilter{Source: body.Source, Target: body.Target, Max: body.Limit}
	var ok bool
	if f.Since, ok = timeParam(w, "since", body.Since); !ok {
		return
	}
	if f.Until, ok = timeParam(w, "until", body.Until); !ok {
		return
	}
	if body.Limit < 0 {
		writeError(w, http.StatusBadRequest, "bad_request", "limit must be 0 (all) or more")
		return
	}
	start := time.Now()
	n, err := a.Store.ReplayDead(r.Context(), f, a.Now())
	if err != nil {
		a.fail(w, err)
		return
	}
	if n > 0 && a.Notify != nil {
		a.Notify()
	}
	a.Logger.Info("dlq replay", slog.String(relay.LogKeySource, body.Source), slog.String(relay.LogKeyTarget, body.Target),
		slog.Int(relay.LogKeyDeliveries, n), slog.Duration(relay.LogKeyTook, time.Since(start)))
	writeJSON(w, http.StatusOK, map[string]int{"replayed": n})
}
