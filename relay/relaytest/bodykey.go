package relaytest

import (
	"time"

	"github.com/wprelay/wprelay/relay"
)

// testEnqueueBodyKey: an Incoming's BodyKey is a second idempotency key,
// kept as long as the first: the same body under a new id is a duplicate
// of the event that stored it (also within one batch), until it expires.
func testEnqueueBodyKey(f *fixture) {
	withBody := func(key, body string, at time.Time) relay.Incoming {
		e := in(key, at, "a")
		e.BodyKey = "gh:acme:sha256:" + body
		return e
	}
	first := f.enqueue(withBody("gh:acme:d1", "b1", t0))[0]
	if first.Duplicate {
		f.t.Fatalf("first event: %+v", first)
	}
	if o := f.enqueue(withBody("gh:acme:d2", "b1", t0.Add(time.Minute)))[0]; !o.Duplicate || o.ID != first.ID {
		f.t.Errorf("same body under a new id: %+v, want a duplicate of %s", o, first.ID)
	}
	if o := f.enqueue(withBody("gh:acme:d3", "b2", t0.Add(time.Minute)))[0]; o.Duplicate || o.Conflict {
		f.t.Errorf("another body under a new id: %+v, want a new event", o)
	}
	if o := f.enqueue(withBody("gh:acme:d1", "b9", t0.Add(time.Minute)))[0]; !o.Duplicate || o.ID != first.ID {
		f.t.Errorf("the first id again: %+v, want a duplicate of %s", o, first.ID)
	}
	outs := f.enqueue(withBody("gh:acme:d5", "b5", t0), withBody("gh:acme:d6", "b5", t0))
	if outs[0].Duplicate || !outs[1].Duplicate || outs[1].ID != outs[0].ID {
		f.t.Errorf("same body twice in one batch: %+v, want the second a duplicate of the first", outs)
	}
	// Kept as long as the first key: new again once both expired.
	later := t0.Add(8 * 24 * time.Hour)
	if o := f.enqueue(withBody("gh:acme:d7", "b1", later))[0]; o.Duplicate {
		f.t.Errorf("same body after the keys expired: %+v, want a new event", o)
	}
}
