package relay

import (
	"encoding/json"
	"strings"
	"time"
)

// Route sends a source's events that match it to targets.
type Route struct {
	Name     string      // optional, for messages
	Source   string      // source name, or "target:{name}" for result events
	Tenant   string      // "" matches every tenant
	Types    []string    // globs: * matches any run of characters, "." and "/" included; empty = all
	Where    []Condition // all must hold; empty = no condition
	To       []string
	DryRun   bool     // record deliveries as skipped (with the request) instead of sending them
	MirrorTo []string // extra targets that get copies; their outcome never changes the event's status
}

// Match is one target an event goes to.
type Match struct {
	Target string
	DryRun bool
	Mirror bool
}

// Router finds the targets of an event. It is safe for concurrent use once
// built; set Ordering before use.
type Router struct {
	routes []Route
	// Ordering lists the targets that order their deliveries by subject
	// (ordering: subject), with the policy each such delivery's Order gets
	// (its Key is filled in per event).
	Ordering map[string]Order
}

// NewRouter returns a router over routes, in order.
func NewRouter(routes []Route) *Router {
	return &Router{routes: routes}
}

// Match returns the targets of ev (its Source, Tenant, Type and, for
// routes with conditions, Envelope), each once, in route order. A target
// reached by a live route and by a dry-run route is live; one reached as a
// route's `to` and as another's `mirror_to` is not a mirror.
func (r *Router) Match(ev *Event) []Match {
	return r.match(ev, &envView{raw: ev.Envelope})
}

func (r *Router) match(ev *Event, env *envView) []Match {
	var out []Match
	add := func(target string, dry, mirror bool) {
		for i := range out {
			if out[i].Target == target {
				out[i].DryRun = out[i].DryRun && dry
				out[i].Mirror = out[i].Mirror && mirror
				return
			}
		}
		out = append(out, Match{Target: target, DryRun: dry, Mirror: mirror})
	}
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.Source != ev.Source || (rt.Tenant != "" && rt.Tenant != ev.Tenant) || !matchAny(rt.Types, ev.Type) {
			continue
		}
		if len(rt.Where) > 0 && !env.holds(rt.Where) {
			continue
		}
		for _, t := range rt.To {
			add(t, rt.DryRun, false)
		}
		for _, t := range rt.MirrorTo {
			add(t, rt.DryRun, true)
		}
	}
	return out
}

// Deliveries returns the deliveries of ev, due at now: one per matched
// target, pending, or skipped for a dry-run route; mirror copies marked;
// an Order for targets that order by subject (when the envelope names a
// subject id).
func (r *Router) Deliveries(ev *Event, now time.Time) []Delivery {
	return r.deliveries(ev, &envView{raw: ev.Envelope}, now)
}

func (r *Router) deliveries(ev *Event, env *envView, now time.Time) []Delivery {
	var out []Delivery
	for _, m := range r.match(ev, env) {
		if m.DryRun {
			out = append(out, Delivery{EventID: ev.ID, Target: m.Target, Status: DeliverySkipped, NextAt: now, CreatedAt: now, Mirror: m.Mirror})
			continue
		}
		d := r.to(ev, env, m.Target, now)
		d.Mirror = m.Mirror
		out = append(out, d)
	}
	return out
}

// To returns a pending delivery of ev to target, due at now, with an Order
// when the target orders by subject.
func (r *Router) To(ev *Event, target string, now time.Time) Delivery {
	return r.to(ev, &envView{raw: ev.Envelope}, target, now)
}

func (r *Router) to(ev *Event, env *envView, target string, now time.Time) Delivery {
	d := Delivery{EventID: ev.ID, Target: target, Status: DeliveryPending, NextAt: now, CreatedAt: now}
	if o, ok := r.Ordering[target]; ok {
		if key := env.subjectKey(); key != "" {
			o.Key = key
			d.Order = &o
		}
	}
	return d
}

// SubjectKey returns "{subject.type}:{subject.id}" of a canonical
// envelope, the key deliveries are ordered by; "" when the envelope names
// no subject id (or one a store cannot key).
func SubjectKey(env json.RawMessage) string {
	var v struct {
		Subject Subject `json:"subject"`
	}
	if json.Unmarshal(env, &v) != nil {
		return ""
	}
	return subjectKey(v.Subject)
}

func subjectKey(s Subject) string {
	if s.ID == "" {
		return ""
	}
	key := s.Type + ":" + s.ID
	if strings.IndexByte(key, 0) >= 0 || len(key) > 512 {
		return ""
	}
	return key
}

func matchAny(globs []string, s string) bool {
	if len(globs) == 0 {
		return true
	}
	for _, g := range globs {
		if Glob(g, s) {
			return true
		}
	}
	return false
}

// Glob reports whether s matches pattern, where * matches any run of
// characters (including none, "." and "/") and every other byte matches
// itself.
func Glob(pattern, s string) bool {
	// Iterative matcher with single-star backtracking: linear in practice.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
