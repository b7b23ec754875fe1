package relay

// Final reports whether a delivery status is final: the delivery is never
// due again without a Replay.
func Final(status string) bool {
	switch status {
	case DeliverySucceeded, DeliveryDead, DeliverySkipped:
		return true
	}
	return false
}

// DeliveryState is what an event's status depends on: one delivery's
// status and whether it is a mirror copy. Its JSON form reads those two
// fields of a Delivery.
type DeliveryState struct {
	Status string `json:"status"`
	Mirror bool   `json:"mirror,omitempty"`
}

// EventStatus derives an event's status from its deliveries' states:
// failed when one is dead, else queued while one is not final, else
// delivered. Mirror copies do not count. An event without deliveries is
// discarded, unless given (its status so far) says delivered.
func EventStatus(states []DeliveryState, given string) string {
	if len(states) == 0 {
		if given == EventDelivered {
			return given
		}
		return EventDiscarded
	}
	status := EventDelivered
	for _, s := range states {
		switch {
		case s.Mirror:
		case s.Status == DeliveryDead:
			return EventFailed
		case !Final(s.Status):
			status = EventQueued
		}
	}
	return status
}

// NewStats returns Stats with a zero count for every event and delivery
// status, for a store to add its counts to.
func NewStats() Stats {
	s := Stats{Events: map[string]int{}, Deliveries: map[string]int{}}
	for _, st := range []string{EventQueued, EventDelivered, EventFailed, EventDiscarded} {
		s.Events[st] = 0
	}
	for _, st := range []string{DeliveryPending, DeliveryInFlight, DeliverySucceeded, DeliveryRetrying, DeliveryDead, DeliverySkipped} {
		s.Deliveries[st] = 0
	}
	return s
}

// Replayable reports whether a Replay schedules a delivery in status
// again (due now, with a fresh retry budget): every delivery but one in
// flight (its attempt is under way) or skipped (dry-run, coalesced or out
// of order: sending it was decided against).
func Replayable(status string) bool {
	return status != DeliveryInFlight && status != DeliverySkipped
}
