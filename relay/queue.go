package relay

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Incoming is one verified event with its deliveries, ready to be committed.
type Incoming struct {
	// Event is stored as given. Event.Deliveries holds one entry per target,
	// Status pending (NextAt = when first due) or skipped (dry-run).
	Event Event
	// Raw is the request as received (credentials already redacted).
	// Requests carrying several events (HubSpot batches) share one Raw; the
	// store may keep one copy per event.
	Raw *Raw
	// BodyHash identifies the body for conflict detection: a key that comes
	// back with a different hash is a conflict, not a duplicate.
	BodyHash [32]byte
	// KeyExpires is when the idempotency key may be forgotten.
	KeyExpires time.Time
	// RawOf, when set, names an event stored earlier with this Raw, by an
	// Enqueue of the same request (a large batch committed in parts): the
	// store keeps a reference to that event's raw request rather than
	// another copy of it.
	RawOf string
	// BodyKey, when set, is a second idempotency key, kept as long:
	// the body's hash (BodyKey), for kinds whose event id comes from an
	// unsigned header, so that a signed body re-sent under a new id is a
	// duplicate of the event that stored it.
	BodyKey string
}

// Batch is what one request commits: all of it or none of it.
type Batch struct {
	// Nonce, when set, is a single-use token id (a JWT jti); a nonce seen
	// before with the same NonceExpires (a replayed token: its expiry is
	// signed with its jti) fails the whole batch with ErrReplayed. It is
	// kept until NonceExpires.
	Nonce        string
	NonceExpires time.Time
	Events       []Incoming
}

// Outcome is what Enqueue did with one Incoming, in order.
type Outcome struct {
	ID        string // the new event's id, or for a duplicate the first one's
	Duplicate bool   // the key was already stored with the same body hash
	Conflict  bool   // the key was already stored with a different body hash
}

// Job is a claimed delivery together with what the dispatcher needs to send it.
type Job struct {
	EventID     string
	Target      string
	Type        string
	Source      string
	Tenant      string
	Attempts    int       // attempts made so far, over the delivery's whole life
	Tries       int       // attempts made since Since (the retry budget counts these)
	Since       time.Time // creation, or the last replay
	Envelope    json.RawMessage
	TraceParent string
	// OutOfOrder: a newer event about the same subject was already
	// delivered to the target (see Order); send X-Wprelay-Out-Of-Order.
	OutOfOrder bool
	// Mirror: the delivery is a mirror_to copy (Delivery.Mirror).
	Mirror bool
}

// Result is the outcome of one attempt, recorded by Complete.
type Result struct {
	EventID string
	Target  string
	Attempt Attempt
	// Status is DeliverySucceeded, DeliveryRetrying (due again at NextAt) or
	// DeliveryDead (Reason kept in the dead-letter index).
	Status string
	NextAt time.Time
	Reason string
	// ResultID, for a succeeded delivery whose answer became a result event
	// (reply_to), is that event's id; it is kept as Delivery.ResultID.
	ResultID string
}

// Queue is what the ingest path and the dispatcher need from a store.
// Implementations must pass relaytest.TestStore.
type Queue interface {
	// Enqueue commits a batch durably (fsync) before it returns, deduping
	// each event on its idempotency key, also against earlier events of the
	// same batch. Concurrent calls may share one commit.
	Enqueue(ctx context.Context, b *Batch) ([]Outcome, error)
	// Claim marks up to n deliveries for target that are due at or before
	// now as in flight, leased until now+lease: a lease that runs out makes
	// the delivery due again. Oldest due first. Deliveries with an Order
	// are held back, coalesced or skipped as Order describes (so Claim may
	// hand out fewer than n while more are due).
	Claim(ctx context.Context, target string, now time.Time, n int, lease time.Duration) ([]Job, error)
	// Complete records the attempt, the new state and recomputes the event's
	// status. Completing a delivery that is not in flight is ErrNotFound.
	Complete(ctx context.Context, r Result) error
	// NextDue reports when target's earliest pending delivery is due; ok is
	// false when it has none.
	NextDue(ctx context.Context, target string) (at time.Time, ok bool, err error)
	// Pending counts deliveries not yet final (pending, in flight, retrying).
	Pending(ctx context.Context) (int, error)
}

// Counters keep a few named counts that must outlive the process (a
// target's daily request budget). Implementations must pass
// relaytest.TestStore.
type Counters interface {
	// Add adds n to the counter name and returns its new value, durably;
	// n = 0 only reads it. A counter that does not exist starts at 0;
	// expires is when Prune may forget it (the latest expires given wins).
	Add(ctx context.Context, name string, n int, expires time.Time) (int, error)
}

// EventFilter selects events for the admin API. Empty fields match all.
type EventFilter struct {
	Status string
	Source string
	Tenant string
	Type   string
	Since  time.Time // received at or after
	Until  time.Time // received before
}

// DeadFilter selects dead deliveries.
type DeadFilter struct {
	Source string
	Target string
	Since  time.Time // dead at or after
	Until  time.Time // dead before; zero = no bound
	// Max bounds how many deliveries ReplayDead replays (oldest dead
	// first); 0 = all. DeadLetters pages with its own limit instead.
	Max int
}

// Stats are counts for the admin API.
type Stats struct {
	Events     map[string]int `json:"events"`     // by event status
	Deliveries map[string]int `json:"deliveries"` // by delivery status
	Pending    int            `json:"queue_depth"`
	OldestDue  time.Time      `json:"oldest_pending,omitzero"`
	Dead       int            `json:"dead_letters"`
}

// ErrInvalidCursor is returned for a page cursor the store did not issue
// (or one from another listing).
var ErrInvalidCursor = errors.New("invalid cursor")

// Pruner is what the retention loop needs.
type Pruner interface {
	// Prune deletes at most max expired idempotency keys, nonces and
	// counters, and events received before eventsBefore whose deliveries
	// are all final (mirror copies included).
	// It reports how many records it deleted; 0 means nothing is left to do.
	Prune(ctx context.Context, now, eventsBefore time.Time, max int) (int, error)
}
