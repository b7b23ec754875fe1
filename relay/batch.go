package relay

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
)

// NewEventID returns a new event id: a UUIDv7, so ids sort by the time
// they were made.
func NewEventID() (string, error) {
	u, err := uuid.NewV7()
	if err != nil {
		return "", fmt.Errorf("new event id: %w", err)
	}
	return u.String(), nil
}

// ValidName reports whether s can name an event, a target or an ordering
// subject in a store: it is not empty and holds no NUL byte (the stores'
// key separator).
func ValidName(s string) bool { return s != "" && strings.IndexByte(s, 0) < 0 }

// CheckBatch validates a batch and returns its events as a store commits
// them, leaving b as it was: an event without an id gets one
// (NewEventID), one without ReceivedAt is received now; each delivery
// belongs to the event, targets are valid and not repeated, a delivery
// without a status is pending, due at NextAt (ReceivedAt when unset) and
// created at CreatedAt (ReceivedAt when unset); a skipped delivery has no
// NextAt; only pending deliveries with a valid key keep their Order; the
// event's Status follows its deliveries (EventStatus).
func CheckBatch(b *Batch, now time.Time) ([]Incoming, error) {
	ins := make([]Incoming, len(b.Events))
	for i := range b.Events {
		in := b.Events[i]
		e := &in.Event
		if e.IdempotencyKey == "" {
			return nil, fmt.Errorf("event %d: empty idempotency key", i)
		}
		if e.ID == "" {
			id, err := NewEventID()
			if err != nil {
				return nil, fmt.Errorf("event %d: %w", i, err)
			}
			e.ID = id
		} else if !ValidName(e.ID) {
			return nil, fmt.Errorf("event %d: invalid id %q", i, e.ID)
		}
		if e.ReceivedAt.IsZero() {
			e.ReceivedAt = now
		}
		dels := make([]Delivery, len(e.Deliveries))
		states := make([]DeliveryState, len(e.Deliveries))
		seen := make(map[string]bool, len(e.Deliveries))
		for j, d := range e.Deliveries {
			if !ValidName(d.Target) || seen[d.Target] {
				return nil, fmt.Errorf("event %d: delivery %d: invalid or repeated target %q", i, j, d.Target)
			}
			seen[d.Target] = true
			switch d.Status {
			case "":
				d.Status = DeliveryPending
			case DeliveryPending, DeliverySkipped:
			default:
				return nil, fmt.Errorf("event %d: delivery %d: status %q, want pending or skipped", i, j, d.Status)
			}
			d.EventID, d.OutOfOrder, d.ResultID = e.ID, false, ""
			if d.CreatedAt.IsZero() {
				d.CreatedAt = e.ReceivedAt
			}
			if d.Status != DeliveryPending {
				d.NextAt = time.Time{}
			} else if d.NextAt.IsZero() {
				d.NextAt = e.ReceivedAt
			}
			if d.History == nil {
				d.History = []Attempt{}
			}
			if d.Order != nil {
				if d.Status != DeliveryPending || !ValidName(d.Order.Key) {
					d.Order = nil
				} else {
					o := *d.Order
					d.Order = &o
				}
			}
			dels[j], states[j] = d, DeliveryState{Status: d.Status, Mirror: d.Mirror}
		}
		e.Deliveries = dels
		e.Status = EventStatus(states, e.Status)
		ins[i] = in
	}
	return ins, nil
}

// MaxHistory is how many attempts a delivery keeps: the most recent ones.
const MaxHistory = 50

// AddAttempt appends a to a delivery's history h, dropping the oldest
// attempts beyond MaxHistory.
func AddAttempt(h []Attempt, a Attempt) []Attempt {
	h = append(h, a)
	if n := len(h); n > MaxHistory {
		h = h[n-MaxHistory:]
	}
	return h
}

// Check reports whether r can complete a delivery: its Status is
// succeeded, retrying or dead.
func (r *Result) Check() error {
	switch r.Status {
	case DeliverySucceeded, DeliveryRetrying, DeliveryDead:
		return nil
	}
	return fmt.Errorf("status %q, want succeeded, retrying or dead", r.Status)
}

// DeadAt is when a dead delivery died: the attempt's time, or now when it
// has none.
func (r *Result) DeadAt(now time.Time) time.Time {
	if r.Attempt.At.IsZero() {
		return now
	}
	return r.Attempt.At
}

// PrepareBatch checks b (CheckBatch) and returns what prepare makes of each
// of its events, in order: a store's encoding of a batch before it
// commits it.
func PrepareBatch[P any](b *Batch, now time.Time, prepare func(i int, in *Incoming, p *P) error) ([]P, error) {
	ins, err := CheckBatch(b, now)
	if err != nil {
		return nil, err
	}
	ps := make([]P, len(ins))
	for i := range ins {
		if err := prepare(i, &ins[i], &ps[i]); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return ps, nil
}
