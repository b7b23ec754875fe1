package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/wprelay/wprelay/relay/provider"
)

// validateSources checks sources and returns them by name.
func (c *Config) validateSources(p *problems) map[string]*Source {
	if len(c.Sources) == 0 {
		p.add("sources", "at least one source is required")
	}
	sources := map[string]*Source{}
	for i := range c.Sources {
		s := &c.Sources[i]
		f := fmt.Sprintf("sources[%d]", i)
		if !nameRE.MatchString(s.Name) {
			p.add(f+".name", "%q must be lower-case letters, digits, - or _ (it is the URL path /hooks/{name})", s.Name)
		} else if sources[s.Name] != nil {
			p.add(f+".name", "duplicate source %q", s.Name)
		}
		sources[s.Name] = s
		if !slices.Contains(provider.Kinds(), s.Kind) {
			p.add(f+".kind", "unknown kind %q%s (known: %s)", s.Kind, didYouMean(s.Kind, provider.Kinds()), strings.Join(provider.Kinds(), ", "))
			continue
		}
		v, err := provider.New(s.ProviderOptions())
		if err != nil {
			p.add(f, "%v", err)
			continue
		}
		if len(s.Secrets) == 0 && len(s.Tenants) == 0 {
			p.add(f+".secrets", "source %q has no secrets: set secrets, or tenants with secrets", s.Name)
		}
		checkSecrets := func(field string, secrets []Secret) {
			for j, sec := range secrets {
				if sec == "" {
					p.add(fmt.Sprintf("%s[%d]", field, j), "empty secret")
				} else if _, err := v.Key(sec.Reveal()); err != nil {
					p.add(fmt.Sprintf("%s[%d]", field, j), "%v", err)
				}
			}
		}
		checkSecrets(f+".secrets", s.Secrets)
		tenants := map[string]bool{}
		for j, t := range s.Tenants {
			tf := fmt.Sprintf("%s.tenants[%d]", f, j)
			if !nameRE.MatchString(t.Name) {
				p.add(tf+".name", "%q must be lower-case letters, digits, - or _", t.Name)
			} else if tenants[t.Name] {
				p.add(tf+".name", "duplicate tenant %q", t.Name)
			}
			tenants[t.Name] = true
			if len(t.Secrets) == 0 {
				p.add(tf+".secrets", "tenant %q has no secrets", t.Name)
			}
			checkSecrets(tf+".secrets", t.Secrets)
		}
		if s.Tolerance < 0 {
			p.add(f+".tolerance", "must not be negative")
		}
		if s.MaxBody < 0 {
			p.add(f+".max_body", "must not be negative")
		}
		for j, a := range s.AllowIPs {
			if _, err := ParsePrefix(a); err != nil {
				p.add(fmt.Sprintf("%s.allow_ips[%d]", f, j), "%q is not an address or CIDR", a)
			}
		}
	}
	return sources
}

// validateRoutes checks routes against the sources and targets.
func (c *Config) validateRoutes(p *problems, sources map[string]*Source, targets map[string]*Target) {
	routeNames := map[string]bool{}
	for i, r := range c.Routes {
		f := fmt.Sprintf("routes[%d]", i)
		if r.Name != "" {
			f = fmt.Sprintf("routes[%d] (%s)", i, r.Name)
			if routeNames[r.Name] {
				p.add(f+".name", "duplicate route name %q", r.Name)
			}
			routeNames[r.Name] = true
		}
		if name, ok := strings.CutPrefix(r.Source, "target:"); ok {
			if t := targets[name]; t == nil {
				p.add(f+".source", "no target named %q (a route from target:{name} takes the results of a reply_to target)", name)
			} else if t.ReplyTo == "" {
				p.add(f+".source", "target %q has no reply_to, so it makes no result events for this route to take", name)
			}
		} else if sources[r.Source] == nil {
			p.add(f+".source", "no source named %q", r.Source)
		}
		if len(r.To) == 0 {
			p.add(f+".to", "a route needs at least one target")
		}
		for j, name := range r.To {
			if targets[name] == nil {
				p.add(fmt.Sprintf("%s.to[%d]", f, j), "no target named %q", name)
			}
		}
		for j, name := range r.MirrorTo {
			switch {
			case targets[name] == nil:
				p.add(fmt.Sprintf("%s.mirror_to[%d]", f, j), "no target named %q", name)
			case slices.Contains(r.To, name):
				p.add(fmt.Sprintf("%s.mirror_to[%d]", f, j), "target %q is in to already", name)
			}
		}
		for j, g := range r.Types {
			if g == "" {
				p.add(fmt.Sprintf("%s.types[%d]", f, j), "empty type pattern (use * for every type)")
			}
		}
		for _, cond := range r.Where {
			wf := f + ".where." + cond.Path
			switch {
			case cond.Op == "null":
				p.add(wf, "a null value: test for a missing field with {present: false}")
			case cond.Op == "a list" || cond.Op == "not a mapping":
				p.add(strings.TrimSuffix(wf, "."), "%s: use a value, or {eq: …}, {present: true|false}, {prefix: …}", cond.Op)
			default:
				if err := cond.Validate(); err != nil {
					p.add(wf, "%v", err)
				}
			}
		}
	}
}
