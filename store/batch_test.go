package store_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

// TestEnqueue_BatchStoresRawOnce: the 2,000 events of one request share
// its raw request, stored once, not once per event (which grew the store
// with the square of the batch), and each still reads it.
func TestEnqueue_BatchStoresRawOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wprelay.db")
	db, err := store.Open(path, store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
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
	ins := make([]relay.Incoming, n)
	for i := range ins {
		ins[i] = event(fmt.Sprintf("hubspot::%d", i+1), t0, "crm")
		ins[i].Raw = raw
	}
	start := time.Now()
	outs := enqueue(t, db, ins...)
	took := time.Since(start)
	for _, i := range []int{0, 1, n - 1} {
		got, err := db.Raw(t.Context(), outs[i].ID)
		if err != nil || len(got.Body) != len(raw.Body) {
			t.Fatalf("Raw of event %d: %v, %v", i, got, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var rawBytes int
	_ = bdb.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("raws")).ForEach(func(_, v []byte) error { rawBytes += len(v); return nil })
	})
	t.Logf("%d events, body %d bytes: enqueue %s, raw records %d bytes", n, len(raw.Body), took, rawBytes)
	if rawBytes >= 2*len(raw.Body) {
		t.Errorf("raw records hold %d bytes for a %d-byte request: want it stored once", rawBytes, len(raw.Body))
	}
}
