// From configuration to components: sources, targets, routes and the
// redaction policies, as ingress, the dispatcher and the logger take them.

package main

import (
	"fmt"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/ingress"
	"github.com/wprelay/wprelay/relay/provider"
)

func buildSources(cfg config.Config) ([]*ingress.Source, error) {
	var out []*ingress.Source
	for i, s := range cfg.Sources {
		v, err := provider.New(s.ProviderOptions())
		if err != nil {
			return nil, fmt.Errorf("source %s: %w", s.Name, err)
		}
		src := &ingress.Source{Name: s.Name, Kind: s.Kind, Verifier: v, ContentTypes: s.ContentTypes, MaxBody: s.MaxBody, PublicURL: s.PublicURL,
			Redact: sourceRedactor(cfg, i)}
		if len(src.ContentTypes) == 0 {
			src.ContentTypes = provider.ContentTypes(v) // e.g. slack: JSON and forms
		}
		keys := func(secrets []config.Secret) ([][]byte, error) {
			var ks [][]byte
			for _, sec := range secrets {
				k, err := v.Key(sec.Reveal())
				if err != nil {
					return nil, fmt.Errorf("source %s: %w", s.Name, err)
				}
				ks = append(ks, k)
			}
			return ks, nil
		}
		if len(s.Secrets) > 0 {
			ks, err := keys(s.Secrets)
			if err != nil {
				return nil, err
			}
			src.Tenants = append(src.Tenants, ingress.Tenant{Keys: ks})
		}
		for _, t := range s.Tenants {
			ks, err := keys(t.Secrets)
			if err != nil {
				return nil, err
			}
			src.Tenants = append(src.Tenants, ingress.Tenant{Name: t.Name, Keys: ks})
		}
		for _, a := range s.AllowIPs {
			p, err := config.ParsePrefix(a)
			if err != nil {
				return nil, fmt.Errorf("source %s: allow_ips: %w", s.Name, err)
			}
			src.AllowIPs = append(src.AllowIPs, p)
		}
		out = append(out, src)
	}
	return out, nil
}

// sourceRedactor is the redaction policy of the requests stored for source
// i: its configured signature header (kind hmac), and every value of the
// configuration's ${…} references.
func sourceRedactor(cfg config.Config, i int) *relay.Redactor {
	var headers []string
	if s := cfg.Sources[i]; s.Kind == "hmac" {
		headers = append(headers, s.HMAC.Header)
	}
	return relay.NewRedactor(headers, cfg.References(""))
}

// logRedactor is what every log line is kept free of: the values of the
// configuration's ${…} references and the targets' credentials.
func logRedactor(cfg config.Config) *relay.Redactor {
	values := cfg.References("")
	for _, t := range cfg.Targets {
		values = append(values, targetCredentials(t)...)
	}
	return relay.NewRedactor(nil, values)
}

// targetCredentials are the secret values of a target's settings.
func targetCredentials(t config.Target) []string {
	var out []string
	for _, sec := range []config.Secret{t.JWTSecret, t.SigningSecret, t.Auth.Bearer} {
		out = append(out, sec.Reveal())
	}
	if a := t.Auth.Basic; a != nil {
		out = append(out, a.Password.Reveal())
	}
	if a := t.Auth.HMAC; a != nil {
		out = append(out, a.Secret.Reveal())
	}
	if a := t.Auth.JWT; a != nil {
		out = append(out, a.Secret.Reveal())
	}
	return out
}

func buildTargets(cfg config.Config) ([]deliver.Target, error) {
	var out []deliver.Target
	for i, t := range cfg.Targets {
		dt := deliver.Target{
			Name: t.Name, Kind: t.Kind, URL: t.URL, Timeout: t.Timeout.D(), MaxAttempts: t.MaxAttempts,
			MaxAge: t.MaxAge.D(), MaxBackoff: t.MaxBackoff.D(), Concurrency: t.Concurrency, Rate: t.Rate,
			SuccessCodes: t.SuccessCodes, AllowPrivate: t.AllowPrivate, ReplyTo: t.ReplyTo,
			RatePerMinute: t.RatePerMinute, DailyBudget: t.DailyBudget,
			Signer:  deliver.Signer{Audience: t.Audience},
			Breaker: &deliver.Breaker{Failures: t.Breaker.Failures, Cooldown: t.Breaker.Cooldown.D(), MaxCooldown: t.Breaker.MaxCooldown.D()},
		}
		if len(t.Headers) > 0 {
			dt.Headers = map[string]string{}
			for k, v := range t.Headers {
				dt.Headers[k] = v.Reveal()
				if cfg.FromReference(fmt.Sprintf("targets[%d].headers.%s", i, k)) {
					dt.SecretHeaders = append(dt.SecretHeaders, k) // from ${…}: never shown
				}
			}
		}
		if t.JWTSecret != "" {
			dt.Signer.JWTSecret = []byte(t.JWTSecret.Reveal())
		}
		if t.SigningSecret != "" {
			k, err := config.StandardKey(t.SigningSecret)
			if err != nil {
				return nil, fmt.Errorf("target %s: signing_secret: %w", t.Name, err)
			}
			dt.Signer.SigningKey = k
		}
		switch a := t.Auth; {
		case a.Bearer != "":
			dt.Auth.Bearer = a.Bearer.Reveal()
		case a.Basic != nil:
			dt.Auth.BasicUser, dt.Auth.BasicPassword = a.Basic.Username, a.Basic.Password.Reveal()
		case a.HMAC != nil:
			dt.Auth.HMAC = &deliver.HMACAuth{Key: []byte(a.HMAC.Secret.Reveal()), Header: a.HMAC.Header,
				Prefix: a.HMAC.Prefix, Encoding: a.HMAC.Encoding, TimestampHeader: a.HMAC.TimestampHeader}
		case a.JWT != nil:
			dt.Signer.JWTSecret = []byte(a.JWT.Secret.Reveal())
			if a.JWT.Audience != "" {
				dt.Signer.Audience = a.JWT.Audience
			}
		}
		// Secret values never recorded: every value from ${…} in the
		// target's settings, and its credentials.
		dt.Redact = append(cfg.References(fmt.Sprintf("targets[%d]", i)), targetCredentials(t)...)
		if t.Template != "" {
			tp, err := deliver.ParseTemplate(t.Name, t.Template)
			if err != nil {
				return nil, fmt.Errorf("target %s: template: %w", t.Name, err)
			}
			dt.Template = tp
		}
		dt.Raw = t.Format == "raw"
		out = append(out, dt)
	}
	return out, nil
}

// buildRouter returns the router of cfg's routes, with the targets that
// order their deliveries by subject.
func buildRouter(cfg config.Config) *relay.Router {
	routes := make([]relay.Route, 0, len(cfg.Routes))
	for _, r := range cfg.Routes {
		routes = append(routes, relay.Route{Name: r.Name, Source: r.Source, Tenant: r.Tenant, Types: r.Types,
			Where: r.Where, To: r.To, DryRun: r.DryRun, MirrorTo: r.MirrorTo})
	}
	router := relay.NewRouter(routes)
	for _, t := range cfg.Targets {
		if t.Ordering == "subject" {
			if router.Ordering == nil {
				router.Ordering = map[string]relay.Order{}
			}
			router.Ordering[t.Name] = relay.Order{Coalesce: t.Coalesce, Skip: t.OutOfOrder == "skip"}
		}
	}
	return router
}
