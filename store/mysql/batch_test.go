package mysql

import (
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay/relaytest"
)

// TestEnqueue_BatchStoresRawOnce: the 2,000 events of one request share
// its raw request, stored once, not once per event (which grew the store
// with the square of the batch), and each still reads it.
func TestEnqueue_BatchStoresRawOnce(t *testing.T) {
	o := options(t)
	dropTables(t, o)
	db := mustOpen(t, o)
	b := relaytest.HubSpotBatch(2000, time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), "crm")
	raw := b.Events[0].Raw
	took := relaytest.WantSharedRaw(t, db, b)
	var rawBytes int64
	if err := db.sql.QueryRowContext(t.Context(), db.t.expand("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM {bodies}")).Scan(&rawBytes); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, body %d bytes: enqueue %s, raw column %d bytes", len(b.Events), len(raw.Body), took, rawBytes)
	if rawBytes >= 2*int64(len(raw.Body)) {
		t.Errorf("raw column holds %d bytes for a %d-byte request: want it stored once", rawBytes, len(raw.Body))
	}
}
