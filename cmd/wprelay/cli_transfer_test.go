package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/admin"
)

// readExport returns the records of an export file, checking that each id
// appears once.
func readExport(t *testing.T, path string) []admin.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs []admin.Record
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r admin.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%s: a line is not a record: %v: %s", path, err, sc.Bytes())
		}
		if seen[r.ID] {
			t.Fatalf("%s: event %s twice", path, r.ID)
		}
		seen[r.ID] = true
		recs = append(recs, r)
	}
	return recs
}

func recordIDs(recs []admin.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

// allEvents lists every event of a sidecar through the admin API.
func (e *adminEnv) allEvents() []admin.EventView {
	e.t.Helper()
	var all []admin.EventView
	cursor := ""
	for {
		var page eventPage
		if st := e.api("GET", "/admin/v1/events?limit=1000&cursor="+cursor, "", &page); st != 200 {
			e.t.Fatalf("list: %d", st)
		}
		all = append(all, page.Events...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

// Export from a serving sidecar and from its stopped data dir give the
// same file; importing it into a fresh sidecar stores every event once,
// routed anew with the same Idempotency-Keys; importing it again adds
// nothing.
func TestCLI_ExportImportRoundTrip(t *testing.T) {
	a := newAdminEnv(t)
	const pushes = 300 // more than one read transaction of the export
	for i := range pushes {
		a.github(fmt.Sprintf("rt-%d", i), "push", fmt.Sprintf(`{"ref":"refs/heads/b%d","n":%d}`, i, i))
	}
	inv := a.stripe("evt_rt_inv", "invoice.created")
	a.stripe("evt_rt_charge", "charge.succeeded") // discarded
	drained := func() {
		deadline := time.Now().Add(20 * time.Second)
		for {
			var s admin.StatsView
			a.api("GET", "/admin/v1/stats", "", &s)
			if s.QueueDepth == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("queue not drained: %+v", s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// crm answers 400 only once everything before is delivered: under
	// load, an earlier delivery to crm could otherwise meet the 400.
	a.waitStatus(inv, "delivered")
	drained()
	a.crm.set(400, nil)
	dead := a.github("rt-dead", "push", `{"ref":"refs/heads/dead"}`)
	a.waitStatus(dead, "failed")
	drained()
	total := pushes + 3
	dir := t.TempDir()
	served, stopped := filepath.Join(dir, "served.jsonl"), filepath.Join(dir, "stopped.jsonl")

	start := time.Now()
	out, errOut, code := a.cli("export", "--since", "0", "-o", served)
	if code != 0 || !strings.Contains(errOut, fmt.Sprintf("exported %d events from the admin API at", total)) {
		t.Fatalf("export while serving: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("export of %d events while serving: %s", total, time.Since(start).Round(time.Millisecond))
	recs := readExport(t, served)
	if len(recs) != total {
		t.Fatalf("served export has %d events, want %d", len(recs), total)
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ReceivedAt.Before(recs[i-1].ReceivedAt) {
			t.Fatalf("export not oldest first at line %d", i+1)
		}
	}
	byID := map[string]admin.Record{}
	for _, r := range recs {
		byID[r.ID] = r
	}
	if r := byID[dead]; r.Status != "failed" || len(r.Deliveries) != 1 || r.Deliveries[0].Status != "dead" || r.Deliveries[0].LastStatus != 400 ||
		r.Raw == nil || r.Raw.Headers["X-Hub-Signature-256"][0] != "REDACTED" || *r.Raw.Body != `{"ref":"refs/heads/dead"}` || r.Format != admin.RecordFormat {
		t.Fatalf("record of the dead event = %+v", r)
	}

	// The file is locked while the sidecar serves: a read-only open says so.
	_, errOut, code = runCLI("export", "--from", "file", "--data-dir", a.m.Config.DataDir, "--since", "0", "-o", filepath.Join(dir, "locked.jsonl"))
	if code != 1 || !strings.Contains(errOut, "locked") || !strings.Contains(errOut, "--from api") {
		t.Fatalf("export from the file of a serving sidecar: exit %d\n%s", code, errOut)
	}

	// Filters.
	_, errOut, code = a.cli("export", "--since", "0", "--source", "stripe", "-o", filepath.Join(dir, "stripe.jsonl"))
	if got := readExport(t, filepath.Join(dir, "stripe.jsonl")); code != 0 || len(got) != 2 {
		t.Fatalf("export --source stripe: exit %d, %d events\n%s", code, len(got), errOut)
	}

	// Stopped: auto finds no admin API and reads the file.
	if err := a.m.Close(); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = a.cli("export", "--since", "0", "--data-dir", a.m.Config.DataDir, "--output", stopped)
	if code != 0 || !strings.Contains(errOut, "(read-only)") {
		t.Fatalf("export of a stopped data dir: exit %d\n%s", code, errOut)
	}
	sb, _ := os.ReadFile(served)
	pb, _ := os.ReadFile(stopped)
	if !bytes.Equal(sb, pb) {
		t.Fatalf("the exports while serving and stopped differ (%d and %d bytes)", len(sb), len(pb))
	}

	// Import into a fresh sidecar.
	b := newAdminEnv(t)
	out, errOut, code = b.cli("import", served, "--batch", "128")
	if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("imported %d events, 0 already present, 0 failed", total) {
		t.Fatalf("import: exit %d\n%s%s", code, out, errOut)
	}
	got := b.allEvents()
	var gotIDs []string
	for _, e := range got {
		gotIDs = append(gotIDs, e.ID)
	}
	want := recordIDs(recs)
	sort.Strings(gotIDs)
	sort.Strings(want)
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("imported ids differ: %d events, want %d", len(gotIDs), len(want))
	}
	// Routed by today's routes, delivered with the original Idempotency-Keys.
	b.waitStatus(dead, "delivered")
	v := b.waitStatus(inv, "delivered")
	if v.IdempotencyKey != "stripe:acme:evt_rt_inv" || len(v.Deliveries) != 2 || !v.ReceivedAt.Equal(byID[inv].ReceivedAt) {
		t.Fatalf("imported event = %+v", v)
	}
	if keys := b.crm.got(); !slices.Contains(keys, dead+":crm") || !slices.Contains(keys, inv+":crm") {
		t.Fatalf("the new sidecar's target did not get the original keys")
	}
	var raw admin.RawView
	if st := b.api("GET", "/admin/v1/events/"+dead+"/raw", "", &raw); st != 200 || string(raw.Body) != `{"ref":"refs/heads/dead"}` {
		t.Fatalf("imported raw: %d %+v", st, raw)
	}

	// Again: nothing new.
	out, errOut, code = b.cli("import", stopped)
	if code != 0 || strings.TrimSpace(out) != fmt.Sprintf("imported 0 events, %d already present, 0 failed", total) {
		t.Fatalf("second import: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(b.allEvents()); n != total {
		t.Fatalf("%d events after the second import, want %d", n, total)
	}

	// Lines that cannot be imported are named, and fail the command.
	bad := filepath.Join(dir, "bad.jsonl")
	first, _ := json.Marshal(byID[inv])
	os.WriteFile(bad, []byte(string(first)+"\nnot json\n"+`{"format":"other/v9","id":"x"}`+"\n"), 0o600)
	out, errOut, code = b.cli("import", bad, "--batch", "2")
	if code != 1 || !strings.Contains(errOut, "line 2: not a JSON object") || !strings.Contains(errOut, "line 3 (id x): format") ||
		!strings.Contains(out, "imported 0 events, 1 already present, 2 failed") {
		t.Fatalf("bad lines: exit %d\n%s%s", code, out, errOut)
	}
}
