package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wprelay/wprelay/relay"
	"github.com/wprelay/wprelay/store"
)

func cmdFill(args []string, stderr io.Writer) error {
	fs := newFlags("fill", "Write N finished events (each with a skipped delivery and a 1 KiB body) straight into a\ndata dir, for memory and start-up measurements. The sidecar must be stopped.",
		"  wprelay-bench fill -data-dir /tmp/big -n 1000000")
	dir := fs.String("data-dir", "./data", "data directory")
	n := fs.Int("n", 1_000_000, "events")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return fill(*dir, *n, stderr)
}

// fill writes n events in batches of 1000, without fsync until the end.
func fill(dir string, n int, progress io.Writer) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(dir, "wprelay.db"), store.Options{NoSync: true})
	if err != nil {
		return err
	}
	body := []byte(`{"id":"evt","object":"event","type":"invoice.created","data":{"object":{"pad":"` + strings.Repeat("x", 900) + `"}}}`)
	base := time.Now().Add(-24 * time.Hour)
	const batch = 1000
	// On a terminal the progress line rewrites itself; in a log, one line
	// per 100,000 events.
	cr, nl := "", "\n"
	if f, ok := progress.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			cr, nl = "\r", ""
		}
	}
	for i := 0; i < n; i += batch {
		b := &relay.Batch{}
		for j := i; j < min(i+batch, n); j++ {
			at := base.Add(time.Duration(j) * time.Millisecond)
			id := uuid.Must(uuid.NewV7()).String()
			e := relay.Envelope{ID: id, Source: "stripe", Type: "invoice.created", IdempotencyKey: fmt.Sprintf("stripe::evt_fill_%d", j), OccurredAt: at, ReceivedAt: at, Data: body}
			env, _ := e.Encode()
			b.Events = append(b.Events, relay.Incoming{
				Event: relay.Event{ID: id, Source: "stripe", Type: "invoice.created", IdempotencyKey: fmt.Sprintf("stripe::evt_fill_%d", j),
					Status: relay.EventDelivered, ReceivedAt: at, OccurredAt: at, Envelope: env,
					Deliveries: []relay.Delivery{{EventID: id, Target: "wordpress", Status: relay.DeliverySkipped, NextAt: at, CreatedAt: at}}},
				Raw:        &relay.Raw{Method: "POST", Path: "/hooks/stripe", Header: map[string][]string{"Content-Type": {"application/json"}}, Body: body},
				KeyExpires: at.Add(7 * 24 * time.Hour),
			})
		}
		if _, err := db.Enqueue(context.Background(), b); err != nil {
			db.Close()
			return err
		}
		if (i/batch)%100 == 0 {
			fmt.Fprintf(progress, "%sfill: %d/%d events%s", cr, i, n, nl)
		}
	}
	fmt.Fprintf(progress, "%sfill: %d/%d events\n", cr, n, n)
	return db.Close()
}
