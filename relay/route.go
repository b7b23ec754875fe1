package relay

// Route sends a source's events whose type matches one of Types to targets.
type Route struct {
	Source   string   // source name, or "target:{name}" for result events
	Tenant   string   // "" matches every tenant
	Types    []string // globs: * matches any run of characters, "." and "/" included; empty = all
	To       []string
	DryRun   bool     // record deliveries as skipped instead of sending them
	MirrorTo []string // extra targets that get copies
}

// Match is one target an event goes to.
type Match struct {
	Target string
	DryRun bool
}

// Router finds the targets of an event. It is safe for concurrent use.
type Router struct {
	routes []Route
}

// NewRouter returns a router over routes, in order.
func NewRouter(routes []Route) *Router {
	return &Router{routes: routes}
}

// Match returns the targets of an event, each once, in route order. A target
// reached by a live route and by a dry-run route is live.
func (r *Router) Match(source, tenant, typ string) []Match {
	var out []Match
	add := func(target string, dry bool) {
		for i := range out {
			if out[i].Target == target {
				out[i].DryRun = out[i].DryRun && dry
				return
			}
		}
		out = append(out, Match{Target: target, DryRun: dry})
	}
	for i := range r.routes {
		rt := &r.routes[i]
		if rt.Source != source || (rt.Tenant != "" && rt.Tenant != tenant) || !matchAny(rt.Types, typ) {
			continue
		}
		for _, t := range rt.To {
			add(t, rt.DryRun)
		}
		for _, t := range rt.MirrorTo {
			add(t, rt.DryRun)
		}
	}
	return out
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
