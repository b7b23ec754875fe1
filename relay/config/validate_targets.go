package config

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/wprelay/wprelay/relay/deliver"
)

// validateTargets checks targets and returns them by name.
func (c *Config) validateTargets(p *problems) map[string]*Target {
	targets := map[string]*Target{}
	for i := range c.Targets {
		t := &c.Targets[i]
		f := fmt.Sprintf("targets[%d]", i)
		if !nameRE.MatchString(t.Name) {
			p.add(f+".name", "%q must be lower-case letters, digits, - or _", t.Name)
		} else if targets[t.Name] != nil {
			p.add(f+".name", "duplicate target %q", t.Name)
		}
		targets[t.Name] = t
		if t.Kind != "wordpress" && t.Kind != "http" {
			p.add(f+".kind", "unknown kind %q (use wordpress or http)", t.Kind)
		}
		if u, err := url.Parse(t.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p.add(f+".url", "%q is not an http(s) URL", t.URL)
		} else if u.User != nil {
			p.add(f+".url", "holds credentials, which would show in logs and traces; use auth (basic or bearer)")
		}
		if t.Timeout < 0 || t.MaxAge < 0 || t.MaxBackoff < 0 || t.MaxAttempts < 0 || t.Concurrency < 0 || t.Rate < 0 {
			p.add(f, "timeout, max_age, max_backoff, max_attempts, concurrency and rate must not be negative")
		}
		if t.Kind == "wordpress" && t.JWTSecret == "" {
			p.add(f+".jwt_secret", "a wordpress target needs jwt_secret (the plugin's WPRELAY_WP_JWT_SECRET)")
		}
		if t.SigningSecret != "" {
			if _, err := StandardKey(t.SigningSecret); err != nil {
				p.add(f+".signing_secret", "%v", err)
			}
		}
		for j, code := range t.SuccessCodes {
			if code < 100 || code > 599 {
				p.add(fmt.Sprintf("%s.success_codes[%d]", f, j), "%d is not an HTTP status", code)
			}
		}
		c.validateAutomation(t, f, p)
	}
	for i := range c.Targets {
		t := &c.Targets[i]
		f := fmt.Sprintf("targets[%d]", i)
		if r := t.ReplyTo; r != "" {
			switch {
			case targets[r] == nil:
				p.add(f+".reply_to", "no target named %q", r)
			case t.Kind != "http":
				p.add(f+".reply_to", "only http targets answer with results; target %q is %s", t.Name, t.Kind)
			}
		}
	}
	if loop := resultLoop(c.Targets, c.Routes); loop != "" {
		p.add("targets", "results loop: %s (each answer would make another result, forever)", loop)
	}
	return targets
}

// validateAutomation checks an http target's auth, template, guardrails
// and ordering. f names the target.
func (c *Config) validateAutomation(t *Target, f string, p *problems) {
	n := 0
	if t.Auth.Bearer != "" {
		n++
	}
	for _, set := range []bool{t.Auth.Basic != nil, t.Auth.HMAC != nil, t.Auth.JWT != nil} {
		if set {
			n++
		}
	}
	if n > 0 && t.Kind != "http" {
		p.add(f+".auth", "auth is for http targets; a wordpress target authenticates with jwt_secret and signing_secret")
	}
	if n > 1 {
		p.add(f+".auth", "set one of bearer, basic, hmac or jwt")
	}
	if n > 0 && t.Auth.HMAC == nil {
		for name := range t.Headers {
			if strings.EqualFold(name, "Authorization") {
				p.add(f+".headers.Authorization", "auth sets Authorization already; remove one of them")
			}
		}
	}
	if t.Auth.JWT != nil || t.Auth.Bearer != "" || t.Auth.Basic != nil {
		if t.JWTSecret != "" {
			p.add(f+".jwt_secret", "auth sets Authorization already; use auth.jwt, or jwt_secret, not both")
		}
	}
	if b := t.Auth.Basic; b != nil && (b.Username == "" || b.Password == "") {
		p.add(f+".auth.basic", "needs username and password")
	}
	if h := t.Auth.HMAC; h != nil {
		if h.Secret == "" {
			p.add(f+".auth.hmac.secret", "required")
		}
		if h.Encoding != "" && h.Encoding != "hex" && h.Encoding != "base64" {
			p.add(f+".auth.hmac.encoding", "unknown encoding %q (use hex or base64)", h.Encoding)
		}
	}
	if j := t.Auth.JWT; j != nil && j.Secret == "" {
		p.add(f+".auth.jwt.secret", "required")
	}
	switch t.Format {
	case "", "envelope":
	case "raw":
		if t.Kind != "http" {
			p.add(f+".format", "raw is for http targets; WordPress reads the canonical envelope")
		} else if t.Template != "" {
			p.add(f+".format", "raw sends the provider's body as it came and a template makes another body: set one or the other")
		}
	default:
		p.add(f+".format", "unknown format %q (use envelope, or raw for the provider's body as it came)", t.Format)
	}
	if t.Template != "" {
		if t.Kind != "http" {
			p.add(f+".template", "templates are for http targets; WordPress receives the canonical envelope")
		} else if _, err := deliver.ParseTemplate(t.Name, t.Template); err != nil {
			p.add(f+".template", "target %q: %v", t.Name, err)
		}
	}
	if t.RatePerMinute < 0 {
		p.add(f+".rate_per_minute", "must not be negative")
	}
	if t.DailyBudget < 0 {
		p.add(f+".daily_budget", "must not be negative")
	}
	switch t.Ordering {
	case "", "subject":
	default:
		p.add(f+".ordering", "unknown ordering %q (use subject, or leave it out)", t.Ordering)
	}
	switch {
	case t.OutOfOrder != "" && t.OutOfOrder != "mark" && t.OutOfOrder != "skip":
		p.add(f+".out_of_order", "unknown value %q (use mark or skip)", t.OutOfOrder)
	case t.OutOfOrder != "" && t.Ordering == "":
		p.add(f+".out_of_order", "only with ordering: subject")
	}
	if t.Coalesce && t.Ordering == "" {
		p.add(f+".coalesce", "only with ordering: subject")
	}
}

// resultLoop returns a description of a cycle in the way results travel
// (a reply_to target's results reach, through reply_to and routes from
// target:{name}, a target whose results reach it again), or "".
func resultLoop(targets []Target, routes []Route) string {
	next := map[string][]string{}
	for _, t := range targets {
		if t.ReplyTo == "" {
			continue
		}
		next[t.Name] = append(next[t.Name], t.ReplyTo)
		for _, r := range routes {
			if r.Source == "target:"+t.Name {
				next[t.Name] = append(next[t.Name], r.To...)
			}
		}
	}
	// Only targets with reply_to make results: follow them.
	const (
		active = iota + 1
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(string) string
	visit = func(n string) string {
		switch state[n] {
		case active:
			i := slices.Index(path, n)
			return strings.Join(append(slices.Clone(path[i:]), n), " → ")
		case done:
			return ""
		}
		state[n] = active
		path = append(path, n)
		for _, m := range next[n] {
			if _, makes := next[m]; !makes {
				continue
			}
			if loop := visit(m); loop != "" {
				return loop
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return ""
	}
	names := make([]string, 0, len(next))
	for n := range next {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if loop := visit(n); loop != "" {
			return loop
		}
	}
	return ""
}
