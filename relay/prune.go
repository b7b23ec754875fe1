package relay

import "fmt"

// PruneStep deletes up to max expired records of one kind and reports how
// many it deleted.
type PruneStep struct {
	Kind   string // what it deletes, for errors
	Delete func(max int) (int, error)
}

// Prune runs a Pruner's steps in the order given (idempotency keys,
// nonces, counters, then events), each with what is left of max, and
// reports how many records they deleted in all.
func Prune(max int, steps ...PruneStep) (int, error) {
	n := 0
	for _, s := range steps {
		if n >= max {
			break
		}
		k, err := s.Delete(max - n)
		n += k
		if err != nil {
			return n, fmt.Errorf("prune %s: %w", s.Kind, err)
		}
	}
	return n, nil
}
