package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
)

func cmdEvents(args []string, stdout, stderr io.Writer) error {
	return subcommand("events", "Events as the sidecar stored them, their deliveries and attempts, and replay.",
		map[string]func([]string, io.Writer, io.Writer) error{"list": cmdEventsList, "show": cmdEventsShow, "replay": cmdEventsReplay},
		[]string{"list", "show", "replay"}, args, stdout, stderr)
}

// eventPage is the answer of GET /admin/v1/events.
type eventPage struct {
	Events     []admin.EventView `json:"events"`
	NextCursor string            `json:"next_cursor"`
}

func cmdEventsList(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("events list [flags]",
		"List events, newest first, with their deliveries (target:status(attempts)).\n"+
			"Times are UTC. A page holds --limit events; --all follows the pages to the end,\n"+
			"--cursor starts at the page a previous listing pointed to.",
		"  wprelay events list --status failed --since 24h\n"+
			"  wprelay events list --source stripe --type invoice.paid --all --json | jq -r '.events[].id'", stderr)
	cf.jsonFlag(fs)
	status := fs.String("status", "", "queued, delivered, failed or discarded")
	source := fs.String("source", "", "only this source")
	tenant := fs.String("tenant", "", "only this tenant")
	typ := fs.String("type", "", "only this event type (exact)")
	since := fs.String("since", "", "received at or after: RFC 3339, a date, unix seconds, or an age (6h, 7d)")
	until := fs.String("until", "", "received before (same forms as --since)")
	limit := fs.Int("limit", 50, "events per page, 1 to 1000")
	all := fs.Bool("all", false, "follow every page")
	cursor := fs.String("cursor", "", "start at this page (from a previous listing)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"status": *status, "source": *source, "tenant": *tenant, "type": *typ} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if err := whenParams(q, time.Now(), map[string]string{"since": *since, "until": *until}); err != nil {
		return err
	}
	q.Set("limit", strconv.Itoa(*limit))
	ctx := context.Background()
	var out eventPage
	next := *cursor
	for {
		if next != "" {
			q.Set("cursor", next)
		}
		var page eventPage
		if err := c.do(ctx, "GET", "/admin/v1/events?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		out.Events = append(out.Events, page.Events...)
		next = page.NextCursor
		if !*all || next == "" {
			break
		}
	}
	out.NextCursor = next
	if out.Events == nil {
		out.Events = []admin.EventView{}
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "ID\tRECEIVED (UTC)\tSOURCE\tTYPE\tSTATUS\tDELIVERIES")
	for _, e := range out.Events {
		src := e.Source
		if e.Tenant != "" {
			src += "/" + e.Tenant
		}
		var ds []string
		for _, d := range e.Deliveries {
			ds = append(ds, fmt.Sprintf("%s:%s(%d)", d.Target, d.Status, d.Attempts))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, fmtTime(e.ReceivedAt), src, orDash(e.Type), e.Status, orDash(strings.Join(ds, " ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(out.Events) == 0 {
		fmt.Fprintln(stderr, "no events match")
	}
	if next != "" {
		fmt.Fprintf(stderr, "more events: add --cursor %s (or --all)\n", next)
	}
	return nil
}

func cmdEventsShow(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("events show ID [flags]",
		"Show one event: its fields, each delivery with its Idempotency-Key, every attempt\n"+
			"(time, HTTP status, duration, error, the start of the answer), the events it\n"+
			"caused, and the envelope targets receive. --raw adds the request as received\n"+
			"(credentials redacted).",
		"  wprelay events show 01923c5e-8a1b-7cc2-9f0e-3b1d2a4c5e6f\n"+
			"  wprelay events show 01923c5e-8a1b-7cc2-9f0e-3b1d2a4c5e6f --raw --json", stderr)
	cf.jsonFlag(fs)
	withRaw := fs.Bool("raw", false, "also show the raw request (method, path, headers, body)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("want one event id, got %d arguments", len(pos))}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	ctx := context.Background()
	var e admin.EventView
	if err := c.do(ctx, "GET", "/admin/v1/events/"+url.PathEscape(pos[0]), nil, &e); err != nil {
		return err
	}
	var raw *admin.RawView
	if *withRaw {
		raw = &admin.RawView{}
		if err := c.do(ctx, "GET", "/admin/v1/events/"+url.PathEscape(pos[0])+"/raw", nil, raw); err != nil {
			return err
		}
	}
	if cf.json {
		if raw != nil {
			return printJSON(stdout, struct {
				admin.EventView
				Raw *admin.RawView `json:"raw"`
			}{e, raw})
		}
		return printJSON(stdout, e)
	}
	tw := newTable(stdout)
	src := e.Source
	if e.Tenant != "" {
		src += " (tenant " + e.Tenant + ")"
	}
	rows := [][2]string{
		{"Event", e.ID}, {"Source", src}, {"Type", orDash(e.Type)}, {"Status", e.Status},
		{"Idempotency key", e.IdempotencyKey}, {"Received", fmtTime(e.ReceivedAt) + " UTC"}, {"Occurred", fmtTime(e.OccurredAt) + " UTC"},
	}
	if e.TraceID != "" {
		rows = append(rows, [2]string{"Trace", e.TraceID})
	}
	if e.CausationID != "" {
		rows = append(rows, [2]string{"Caused by", e.CausationID})
	}
	if len(e.Caused) > 0 {
		rows = append(rows, [2]string{"Caused", strings.Join(e.Caused, ", ")})
	}
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if len(e.Deliveries) == 0 {
		fmt.Fprintln(stdout, "No deliveries: no route matched this event.")
	} else {
		fmt.Fprintln(tw, "TARGET\tSTATUS\tATTEMPTS\tLAST HTTP\tNEXT ATTEMPT (UTC)\tIDEMPOTENCY-KEY")
		for _, d := range e.Deliveries {
			next := "-"
			if d.Status == "pending" || d.Status == "retrying" {
				next = fmtTime(d.NextAt)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", d.Target, d.Status, d.Attempts, httpStatus(d.LastStatus, d.Attempts), next, d.IdempotencyKey)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, d := range e.Deliveries {
			if len(d.History) == 0 {
				continue
			}
			fmt.Fprintf(stdout, "\nAttempts to %s", d.Target)
			if d.Reason != "" {
				fmt.Fprintf(stdout, " (dead: %s)", clip(d.Reason, 100))
			}
			fmt.Fprintln(stdout, ":")
			fmt.Fprintln(tw, "  #\tAT (UTC)\tHTTP\tDURATION\tERROR\tANSWER")
			first := d.Attempts - len(d.History) + 1 // history keeps the most recent attempts
			for i, a := range d.History {
				fmt.Fprintf(tw, "  %d\t%s\t%s\t%6dms\t%s\t%s\n", first+i, fmtTime(a.At), httpStatus(a.Status, 1), a.DurationMS, orDash(clip(a.Error, 60)), orDash(clip(a.Response, 60)))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	if len(e.Envelope) > 0 {
		var buf bytes.Buffer
		if json.Indent(&buf, e.Envelope, "  ", "  ") == nil {
			fmt.Fprintf(stdout, "\nEnvelope:\n  %s\n", buf.String())
		}
	}
	if raw != nil {
		printRaw(stdout, raw)
	}
	return nil
}

// httpStatus shows an attempt's HTTP status: "-" before any attempt,
// "network" for an attempt that got no answer.
func httpStatus(status, attempts int) string {
	switch {
	case attempts == 0:
		return "-"
	case status == 0:
		return "network"
	}
	return strconv.Itoa(status)
}

func printRaw(w io.Writer, raw *admin.RawView) {
	fmt.Fprintf(w, "\nRequest (credentials redacted):\n  %s %s\n", raw.Method, raw.Path)
	names := make([]string, 0, len(raw.Headers))
	for k := range raw.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		for _, v := range raw.Headers[k] {
			fmt.Fprintf(w, "  %s: %s\n", k, v)
		}
	}
	switch {
	case raw.Body != nil:
		var buf bytes.Buffer
		if json.Indent(&buf, raw.Body, "  ", "  ") == nil {
			fmt.Fprintf(w, "\n  %s\n", buf.String())
		}
	case raw.BodyText != nil:
		fmt.Fprintf(w, "\n  %s\n", *raw.BodyText)
	case raw.BodyBase64 != nil:
		fmt.Fprintf(w, "\n  (%d bytes, not UTF-8; see --json)\n", len(raw.BodyBase64))
	}
}

func cmdEventsReplay(args []string, stdout, stderr io.Writer) error {
	fs, cf := newClientFlags("events replay ID [flags]",
		"Send an event again: each of its deliveries (or only --target's) is due now with a\n"+
			"fresh retry budget, succeeded and dead ones included. A replay is one more attempt\n"+
			"of the same delivery: the target gets the same Idempotency-Key as before, so a\n"+
			"receiver that dedupes (the WordPress plugin does) acts on it once.",
		"  wprelay events replay 01923c5e-8a1b-7cc2-9f0e-3b1d2a4c5e6f\n"+
			"  wprelay events replay 01923c5e-8a1b-7cc2-9f0e-3b1d2a4c5e6f --target wordpress", stderr)
	cf.jsonFlag(fs)
	target := fs.String("target", "", "replay only the delivery to this target")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return usageError{fmt.Errorf("want one event id, got %d arguments", len(pos))}
	}
	c, err := cf.client()
	if err != nil {
		return err
	}
	path := "/admin/v1/events/" + url.PathEscape(pos[0]) + "/replay"
	if *target != "" {
		path += "?target=" + url.QueryEscape(*target)
	}
	var out struct {
		Status   string `json:"status"`
		EventID  string `json:"event_id"`
		Replayed int    `json:"replayed"`
	}
	if err := c.do(context.Background(), "POST", path, nil, &out); err != nil {
		return err
	}
	if cf.json {
		return printJSON(stdout, out)
	}
	what := plural(out.Replayed, "delivery", "deliveries")
	fmt.Fprintf(stdout, "replaying %s of event %s; follow it with: wprelay events show %s\n", what, pos[0], pos[0])
	return nil
}
