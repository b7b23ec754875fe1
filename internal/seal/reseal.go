package seal

import (
	"context"
	"fmt"
	"time"
)

// Canary is the record both stores seal under the label "meta" to tell,
// at open, whether the configured keys fit what they hold.
var (
	CanaryLabel = []byte("meta")
	CanaryName  = "seal_canary"
)

// NewCanary returns a canary sealed with s's active key.
func (s *Sealer) NewCanary() []byte { return s.Seal(CanaryLabel, CanaryName, []byte("wprelay")) }

// CheckCanary decides what a store does with the canary it holds (nil for
// none) when it opens with sealer s (nil: no keys configured): it refuses
// to open (err) when the canary was sealed with a key s lacks, or when
// data is sealed while no key is configured, rather than failing on every
// read later; it writes a NewCanary (put) when it has none, or one sealed
// by a key other than the active one.
func CheckCanary(s *Sealer, canary []byte) (put bool, err error) {
	switch {
	case canary == nil && s == nil:
		return false, nil
	case canary == nil:
		return true, nil
	case s == nil:
		kid, _ := KeyID(canary)
		return false, fmt.Errorf("the store is encrypted (key %q) but no encryption keys are configured: set encryption.keys", kid)
	}
	if _, err := s.Open(CanaryLabel, CanaryName, canary); err != nil {
		return false, fmt.Errorf("%w: %w (the first configured key seals; keep the old key listed until wprelay rotate-key has run)", ErrWrongKey, err)
	}
	kid, _ := KeyID(canary)
	return kid != s.Active(), nil
}

// Stale reports whether v must be re-sealed with s's active key: it is
// plain or sealed with another key. A nil value is not stale.
func (s *Sealer) Stale(v []byte) bool {
	if v == nil {
		return false
	}
	kid, _ := KeyID(v)
	return kid != s.Active()
}

// Step re-seals up to max records after position from ("" = the start)
// in one short transaction; it returns how many it re-sealed and where to
// go on ("" once every record has been seen).
type Step func(ctx context.Context, from string, max int) (n int, next string, err error)

// ResealAll runs step over a whole store in batches of batch records,
// calling progress (when set) with the running total after each, and
// pausing a millisecond between batches so that it is safe while serving.
// It returns how many records it re-sealed.
func ResealAll(ctx context.Context, step Step, batch int, progress func(done int)) (int, error) {
	total, from := 0, ""
	for {
		n, next, err := step(ctx, from, batch)
		if err != nil {
			return total, err
		}
		total += n
		if progress != nil {
			progress(total)
		}
		if next == "" {
			return total, nil
		}
		from = next
		select {
		case <-ctx.Done():
			return total, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}
