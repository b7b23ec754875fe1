package store_test

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/wprelay/wprelay/relay/relaytest"
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
	b := relaytest.HubSpotBatch(2000, t0, "crm")
	raw := b.Events[0].Raw
	took := relaytest.WantSharedRaw(t, db, b)
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
	t.Logf("%d events, body %d bytes: enqueue %s, raw records %d bytes", len(b.Events), len(raw.Body), took, rawBytes)
	if rawBytes >= 2*len(raw.Body) {
		t.Errorf("raw records hold %d bytes for a %d-byte request: want it stored once", rawBytes, len(raw.Body))
	}
}
