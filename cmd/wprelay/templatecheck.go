package main

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/relay/config"
	"github.com/wprelay/wprelay/relay/deliver"
	"github.com/wprelay/wprelay/relay/provider"
)

// templateWarning is a target's template that fails on the sample event
// (sign's sample) of a source kind routed to it. A warning, not a refusal:
// the sample lacks the optional fields real events may have.
type templateWarning struct {
	Target, Source, Kind string
	Field                string // where it failed; "" when the error names no field
	Err                  error
}

// templateWarnings renders each target's template against the sample
// envelope of every source whose routes (to or mirror_to) reach it.
func templateWarnings(cfg config.Config, targets []deliver.Target) []templateWarning {
	kinds := map[string]string{}
	for _, s := range cfg.Sources {
		kinds[s.Name] = s.Kind
	}
	var out []templateWarning
	for _, t := range targets {
		if t.Template == nil {
			continue
		}
		var seen []string
		for _, r := range cfg.Routes {
			kind, ok := kinds[r.Source]
			if !ok || slices.Contains(seen, r.Source) || !slices.Contains(r.To, t.Name) && !slices.Contains(r.MirrorTo, t.Name) {
				continue // results of reply_to targets have no sample: their data is an answer
			}
			seen = append(seen, r.Source)
			env := sampleEnvelope(kind, r.Source)
			if env == nil {
				continue
			}
			if field, err := t.Template.Try(env, sampleTime); err != nil {
				out = append(out, templateWarning{Target: t.Name, Source: r.Source, Kind: kind, Field: field, Err: err})
			}
		}
	}
	return out
}

var sampleTime = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)

// sampleEnvelope returns the envelope of kind's sample event as source
// src would make it, or nil when the kind has no sample.
func sampleEnvelope(kind, src string) []byte {
	mk, ok := samples[kind]
	if !ok {
		return nil
	}
	body, err := json.Marshal(mk(sampleTime, "01a22254-d1ee-4c0e-b550-51bb23089f0e"))
	if err != nil {
		return nil
	}
	if kind == "hubspot" { // a batch: one event per element
		var elems []json.RawMessage
		if json.Unmarshal(body, &elems) != nil || len(elems) == 0 {
			return nil
		}
		body = elems[0]
	}
	var head struct {
		Type      string `json:"type"`
		EventType string `json:"event_type"`
		SubType   string `json:"subscriptionType"`
	}
	_ = json.Unmarshal(body, &head)
	ev := relay.Event{ID: "01a22254-d1ee-79c0-b550-51bb23089f0e", Source: src, Type: first(sampleTypes[kind], head.Type, head.EventType, head.SubType, "sample.created"),
		IdempotencyKey: src + "::sample", OccurredAt: sampleTime, ReceivedAt: sampleTime}
	env := relay.NewEnvelope(&ev, relay.Normal{}, provider.DataOf(kind, body))
	b, err := env.Encode()
	if err != nil {
		return nil
	}
	return b
}
