package deliver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// maxResultDepth bounds chains of results of results (the configuration
// refuses loops; this is a second guard).
const maxResultDepth = 8

// result turns a 2xx answer of job's target l into a result event and
// enqueues it: type "{type}.result", source "target:{name}", the same
// tenant, causation_id the original event id, subject the original
// subject, data the answer. Its idempotency key is
// "target:{name}:{original event id}", so a retried attempt makes no
// second result (the first one's id is returned).
//
// It goes to the reply_to target, and to the targets of the routes whose
// source is "target:{name}" (a route naming the reply_to target decides
// how it gets it: dry run, mirror). An answer that is not a JSON object,
// is larger than MaxAnswer, nests deeper than MaxDepth or repeats a member
// name makes no result; note says so.
func (d *Dispatcher) result(ctx context.Context, l *loop, job relay.Job, header http.Header, answer []byte, now time.Time) (id, note string, err error) {
	switch {
	case int64(len(answer)) > d.MaxAnswer:
		return "", fmt.Sprintf("no result: the answer is larger than %d bytes", d.MaxAnswer), nil
	case !isObject(answer):
		return "", "no result: the answer is not a JSON object", nil
	case relay.CheckJSON(answer, d.MaxDepth) != nil:
		return "", "no result: " + relay.CheckJSON(answer, d.MaxDepth).Error(), nil
	case strings.Count(job.Type, ".result") >= maxResultDepth:
		return "", "no result: too many results of results", nil
	}
	var orig struct {
		Subject relay.Subject `json:"subject"`
	}
	_ = json.Unmarshal(job.Envelope, &orig)
	ev, err := relay.NewEvent(relay.Draft{
		Source: "target:" + job.Target, Tenant: job.Tenant, Type: job.Type + ".result",
		IdempotencyKey: "target:" + job.Target + ":" + job.EventID,
		ReceivedAt:     now, CausationID: job.EventID, TraceParent: job.TraceParent,
		Normal: relay.Normal{Subject: orig.Subject, Action: relay.Action{Type: "result"}}, Data: json.RawMessage(answer),
		ReplyTo: l.t.ReplyTo,
	}, d.Router, now, d.Preview)
	if err != nil {
		return "", "", err
	}
	raw := &relay.Raw{Method: http.MethodPost, Path: l.redact.String(l.t.URL), Header: l.redact.Header(header), Body: answer}
	outs, err := d.Queue.Enqueue(ctx, &relay.Batch{Events: []relay.Incoming{{
		Event: ev, Raw: raw, KeyExpires: now.Add(d.ResultTTL),
	}}})
	if err != nil {
		return "", "", err
	}
	d.Notify()
	return outs[0].ID, "", nil
}

func isObject(b []byte) bool {
	b = bytes.TrimSpace(b)
	return len(b) > 0 && b[0] == '{' && json.Valid(b)
}
