package mysql

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// TestEnqueue_BatchStoresRawOnce: the 2,000 events of one request share
// its raw request, stored once, not once per event (which grew the store
// with the square of the batch), and each still reads it.
func TestEnqueue_BatchStoresRawOnce(t *testing.T) {
	o := options(t)
	dropTables(t, o)
	db := mustOpen(t, o)
	const n = 2000
	var body strings.Builder
	body.WriteString("[")
	for i := range n {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"eventId":%d,"subscriptionType":"contact.propertyChange","portalId":62515,"objectId":%d,"propertyName":"email","propertyValue":"%s"}`,
			i+1, 1000+i, strings.Repeat("x", 40))
	}
	body.WriteString("]")
	raw := &relay.Raw{Method: "POST", Path: "/hooks/hubspot", Body: []byte(body.String())}
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	ins := make([]relay.Incoming, n)
	for i := range ins {
		ins[i] = incoming(fmt.Sprintf("hubspot::%d", i+1), at, "crm")
		ins[i].Raw = raw
	}
	start := time.Now()
	outs, err := db.Enqueue(t.Context(), &relay.Batch{Events: ins})
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	for _, i := range []int{0, 1, n - 1} {
		got, err := db.Raw(t.Context(), outs[i].ID)
		if err != nil || len(got.Body) != len(raw.Body) {
			t.Fatalf("Raw of event %d: %v, %v", i, got, err)
		}
	}
	var rawBytes int64
	if err := db.sql.QueryRowContext(t.Context(), db.t.expand("SELECT COALESCE(SUM(LENGTH(raw)), 0) FROM {bodies}")).Scan(&rawBytes); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d events, body %d bytes: enqueue %s, raw column %d bytes", n, len(raw.Body), took, rawBytes)
	if rawBytes >= 2*int64(len(raw.Body)) {
		t.Errorf("raw column holds %d bytes for a %d-byte request: want it stored once", rawBytes, len(raw.Body))
	}
}
