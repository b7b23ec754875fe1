package admin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/wprelay/wprelay/relay"
)

// RecordFormat names the export line format; import refuses others.
const RecordFormat = "wprelay.export/v1"

// Export trailers: the number of lines written, and the error that cut the
// export short ("" when it is complete). A client that does not see
// TrailerCount, or sees TrailerError, must not trust the file.
const (
	TrailerCount = "Wprelay-Export-Count"
	TrailerError = "Wprelay-Export-Error"
)

// MaxImportBody is the most one POST /admin/v1/import takes; clients send
// a large file in several requests.
const MaxImportBody = 16 << 20

// Record is one line of an export (JSON lines, oldest event first): the
// event as stored with its envelope, the raw request (credentials were
// redacted at ingest) and a summary of its deliveries. Import reads the
// same lines.
type Record struct {
	Format         string            `json:"format"`
	ID             string            `json:"id"`
	Source         string            `json:"source"`
	Tenant         string            `json:"tenant"`
	Type           string            `json:"type"`
	IdempotencyKey string            `json:"idempotency_key"`
	Status         string            `json:"status"`
	ReceivedAt     time.Time         `json:"received_at"`
	OccurredAt     time.Time         `json:"occurred_at"`
	CausationID    string            `json:"causation_id,omitempty"`
	TraceParent    string            `json:"traceparent,omitempty"`
	Envelope       json.RawMessage   `json:"envelope"`
	Raw            *RawRecord        `json:"raw,omitempty"`
	Deliveries     []DeliverySummary `json:"deliveries"`
}

// RawRecord is a stored request in an export. The body is kept byte for
// byte: as a string when it is UTF-8, else in base64.
type RawRecord struct {
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Headers    map[string][]string `json:"headers"`
	Body       *string             `json:"body,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
}

// DeliverySummary is a delivery's outcome in an export (no attempt
// history).
type DeliverySummary struct {
	Target     string    `json:"target"`
	Status     string    `json:"status"`
	Attempts   int       `json:"attempts"`
	LastStatus int       `json:"last_status,omitempty"`
	LastError  string    `json:"last_error,omitempty"`
	DeadAt     time.Time `json:"dead_at,omitzero"`
}

// NewRecord returns the export line of e (raw may be nil).
func NewRecord(e *relay.Event, raw *relay.Raw) Record {
	rec := Record{
		Format: RecordFormat, ID: e.ID, Source: e.Source, Tenant: e.Tenant, Type: e.Type,
		IdempotencyKey: e.IdempotencyKey, Status: e.Status, ReceivedAt: e.ReceivedAt.UTC(), OccurredAt: e.OccurredAt.UTC(),
		CausationID: e.CausationID, TraceParent: e.TraceParent, Envelope: relay.UpgradeEnvelope(e.Envelope),
		Deliveries: make([]DeliverySummary, 0, len(e.Deliveries)),
	}
	for _, d := range e.Deliveries {
		rec.Deliveries = append(rec.Deliveries, DeliverySummary{
			Target: d.Target, Status: d.Status, Attempts: d.Attempts, LastStatus: d.LastStatus, LastError: d.LastError, DeadAt: d.DeadAt,
		})
	}
	if raw != nil {
		rr := &RawRecord{Method: raw.Method, Path: raw.Path, Headers: raw.Header}
		if utf8.Valid(raw.Body) {
			s := string(raw.Body)
			rr.Body = &s
		} else {
			rr.BodyBase64 = raw.Body
		}
		rec.Raw = rr
	}
	return rec
}

// Unencodable collects the events an export could not write as JSON
// (nested deeper than encoding/json allows: stored before limits.max_depth),
// so that the export goes on past them and then fails naming them, rather
// than stopping at the first or leaving it out unsaid.
type Unencodable struct{ ids []string }

// Write writes e's export line to w, or, when e cannot be encoded as JSON,
// notes it and writes nothing. It returns w's error.
func (u *Unencodable) Write(w io.Writer, e *relay.Event, raw *relay.Raw) error {
	b, err := encode(NewRecord(e, raw))
	if err != nil {
		u.ids = append(u.ids, e.ID)
		return nil
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Has reports whether event id was noted as unencodable.
func (u *Unencodable) Has(id string) bool { return len(u.ids) > 0 && u.ids[len(u.ids)-1] == id }

// Err names the events that were not exported; nil when there are none.
func (u *Unencodable) Err() error {
	if len(u.ids) == 0 {
		return nil
	}
	ids := u.ids
	if len(ids) > 20 {
		ids = ids[:20]
	}
	return fmt.Errorf("%d events could not be encoded as JSON and are not in the export (ids: %s); every other event is: "+
		"read them with GET /admin/v1/events/{id}/raw or delete them with retention", len(u.ids), strings.Join(ids, ", "))
}

// check reports what makes rec unfit for import.
func (rec *Record) check() error {
	switch {
	case rec.Format != RecordFormat:
		return fmt.Errorf("format %q: this wprelay imports %q lines (written by wprelay export)", rec.Format, RecordFormat)
	case rec.ID == "" || strings.ContainsRune(rec.ID, 0):
		return errors.New("no valid id")
	case rec.Source == "" || rec.IdempotencyKey == "":
		return errors.New("source and idempotency_key are required")
	case rec.ReceivedAt.IsZero():
		return errors.New("received_at is required")
	case len(rec.Envelope) == 0 || rec.Envelope[0] != '{' || !json.Valid(rec.Envelope):
		return errors.New("envelope must be a JSON object")
	}
	return nil
}

func (a *API) export(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	q := r.URL.Query()
	if !query(w, q, "status", "source", "tenant", "type", "since", "until") {
		return
	}
	f := relay.EventFilter{Status: q.Get("status"), Source: q.Get("source"), Tenant: q.Get("tenant"), Type: q.Get("type")}
	var ok bool
	if f.Since, ok = timeParam(w, "since", q.Get("since")); !ok {
		return
	}
	if f.Until, ok = timeParam(w, "until", q.Get("until")); !ok {
		return
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Trailer", TrailerCount+", "+TrailerError)
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 64<<10)
	n := 0
	start := time.Now()
	var skipped Unencodable
	err := a.Store.Export(r.Context(), f, func(e *relay.Event, raw *relay.Raw) error {
		if n%256 == 0 {
			// A long export outlives the listener's write timeout.
			_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		}
		if err := skipped.Write(bw, e, raw); err != nil || skipped.Has(e.ID) {
			return err
		}
		n++
		if bw.Buffered() > 48<<10 {
			if err := bw.Flush(); err != nil {
				return err
			}
			return rc.Flush()
		}
		return nil
	})
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = skipped.Err()
	}
	w.Header().Set(TrailerCount, strconv.Itoa(n))
	if err != nil {
		w.Header().Set(TrailerError, err.Error())
		a.Logger.Warn("export cut short", slog.Int(relay.LogKeyEvents, n), slog.String(relay.LogKeyError, err.Error()))
		return
	}
	a.Logger.Info("export", slog.Int(relay.LogKeyEvents, n), slog.String(relay.LogKeySource, f.Source), slog.Duration(relay.LogKeyTook, time.Since(start)))
}

// ImportResult is the answer of POST /admin/v1/import.
type ImportResult struct {
	Imported   int            `json:"imported"`
	Duplicates int            `json:"duplicates"` // already stored (same id or idempotency key)
	Failed     []ImportFailed `json:"failed"`
}

// ImportFailed is a line that was not imported, numbered from 1 within
// the request.
type ImportFailed struct {
	Line  int    `json:"line"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error"`
}

// importEvents commits export lines as new events, as ingest would have
// (deduped on their idempotency keys, routed by today's routes), without
// verifying signatures: the stored requests had their signature headers
// redacted, and the lines come from an operator holding the admin token.
// An event keeps its id, so its deliveries keep their Idempotency-Keys
// and a target that already had it can tell.
func (a *API) importEvents(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
	if a.Queue == nil || a.Router == nil {
		writeError(w, http.StatusNotImplemented, "not_enabled", "this sidecar was built without import")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxImportBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
				fmt.Sprintf("send at most %d bytes of lines per request (wprelay import splits a file for you)", MaxImportBody))
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the body: "+err.Error())
		return
	}
	now := a.Now()
	res := ImportResult{Failed: []ImportFailed{}}
	batch := &relay.Batch{}
	seen := map[string]bool{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(line, &rec); err != nil {
			res.Failed = append(res.Failed, ImportFailed{Line: i + 1, Error: "not a JSON object: " + err.Error()})
			continue
		}
		if err := rec.check(); err != nil {
			res.Failed = append(res.Failed, ImportFailed{Line: i + 1, ID: rec.ID, Error: err.Error()})
			continue
		}
		if seen[rec.ID] {
			res.Duplicates++
			continue
		}
		seen[rec.ID] = true
		if _, err := a.Store.Event(r.Context(), rec.ID); err == nil {
			res.Duplicates++ // stored already (its key may have expired)
			continue
		} else if !errors.Is(err, relay.ErrNotFound) {
			a.fail(w, err)
			return
		}
		in, err := a.incoming(&rec, now)
		if err != nil {
			res.Failed = append(res.Failed, ImportFailed{Line: i + 1, ID: rec.ID, Error: err.Error()})
			continue
		}
		batch.Events = append(batch.Events, in)
	}
	if len(batch.Events) > 0 {
		if a.MaxQueue > 0 {
			if n, err := a.Queue.Pending(r.Context()); err == nil && n+len(batch.Events) > a.MaxQueue {
				w.Header().Set("Retry-After", "60")
				writeError(w, http.StatusServiceUnavailable, "unavailable", "the delivery queue is near limits.max_queue; import again once it has drained (nothing of this request was imported)")
				return
			}
		}
		outs, err := a.Queue.Enqueue(r.Context(), batch)
		if err != nil {
			a.fail(w, err)
			return
		}
		for _, o := range outs {
			if o.Duplicate || o.Conflict {
				res.Duplicates++
			} else {
				res.Imported++
			}
		}
		if res.Imported > 0 && a.Notify != nil {
			a.Notify()
		}
	}
	a.Logger.Info("import", slog.Int(relay.LogKeyImported, res.Imported), slog.Int(relay.LogKeyDuplicates, res.Duplicates), slog.Int(relay.LogKeyFailed, len(res.Failed)))
	writeJSON(w, http.StatusOK, res)
}

// incoming builds the event to commit for rec (relay.NewEvent): its
// stored fields and envelope, and deliveries by today's routes, due now.
func (a *API) incoming(rec *Record, now time.Time) (relay.Incoming, error) {
	ev, err := relay.NewEvent(relay.Draft{
		ID: rec.ID, Source: rec.Source, Tenant: rec.Tenant, Type: rec.Type, IdempotencyKey: rec.IdempotencyKey,
		ReceivedAt: rec.ReceivedAt, OccurredAt: rec.OccurredAt, CausationID: rec.CausationID,
		TraceParent: rec.TraceParent, Envelope: rec.Envelope,
	}, a.Router, now, a.Preview)
	if err != nil {
		return relay.Incoming{}, err
	}
	in := relay.Incoming{Event: ev, KeyExpires: now.Add(a.DedupeTTL)}
	if rec.Raw != nil {
		raw := &relay.Raw{Method: rec.Raw.Method, Path: rec.Raw.Path, Header: rec.Raw.Headers, Body: rec.Raw.BodyBase64}
		if rec.Raw.Body != nil {
			raw.Body = []byte(*rec.Raw.Body)
		}
		in.Raw = raw
	}
	return in, nil
}
