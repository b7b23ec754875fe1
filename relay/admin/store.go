package admin

import (
	"context"
	"io"
	"time"

	"github.com/wprelay/wprelay/relay"
)

// Store is what the admin API needs from a store: its record of events
// and deliveries, to read, page through, replay and export.
// Implementations must pass relaytest.TestStore.
type Store interface {
	// Event returns an event with every delivery and its history.
	Event(ctx context.Context, id string) (*relay.Event, error)
	// Raw returns the request as stored.
	Raw(ctx context.Context, id string) (*relay.Raw, error)
	// Events lists events newest first. cursor is opaque ("" = from the
	// newest); the returned next cursor is "" when there are no more. Pages
	// are stable while new events arrive.
	Events(ctx context.Context, f relay.EventFilter, cursor string, limit int) ([]relay.Event, string, error)
	// DeadLetters lists dead deliveries, most recently dead first.
	DeadLetters(ctx context.Context, f relay.DeadFilter, cursor string, limit int) ([]relay.Delivery, string, error)
	// Replay makes the event's deliveries (or only target's, when set) due
	// at now with a fresh retry budget; it returns how many it scheduled.
	// Deliveries in flight are left alone.
	Replay(ctx context.Context, eventID, target string, now time.Time) (int, error)
	// ReplayDead replays the dead deliveries matching f, oldest dead
	// first, at most f.Max of them when it is set.
	ReplayDead(ctx context.Context, f relay.DeadFilter, now time.Time) (int, error)
	Stats(ctx context.Context) (relay.Stats, error)
	// Effects returns the ids of the events whose CausationID is id (the
	// results its deliveries produced), oldest first, at most limit. It
	// may look only at events received after the cause, within a bounded
	// scan, so a very late result can be missing.
	Effects(ctx context.Context, id string, limit int) ([]string, error)
	// Export calls fn for each event matching f (with its envelope,
	// deliveries and raw request; raw is nil when none was stored), oldest
	// first. Each event is read in one consistent view, but a long export
	// is not one snapshot: it must not hold up writers. Events that arrive
	// during the export may be included or not; none that existed
	// throughout is skipped or repeated. An error from fn stops it.
	Export(ctx context.Context, f relay.EventFilter, fn func(e *relay.Event, raw *relay.Raw) error) error
}

// Backuper is a store that can write a consistent copy of itself while it
// serves (the bbolt store does; see store.DB.Backup).
type Backuper interface {
	// Backup calls begin with the copy's size, then writes the copy to w,
	// both within one read transaction, and returns the bytes written.
	Backup(w io.Writer, begin func(size int64) error) (int64, error)
}
