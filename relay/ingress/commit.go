package ingress

import (
	"context"

	"github.com/wprelay/wprelay/relay"
)

// commitPart is how many events one commit holds at most. The store has
// one writer: a batch of 2,000 events (limits.max_batch raised) committed
// at once held every other source's events for the whole of it, so a
// larger batch is committed in parts of commitPart, each its own commit,
// and others' events go in between. Each part shares the raw request the
// first stored (relay.Incoming.RawOf). The answer waits for every part; a
// part that fails fails the request, and the sender's retry finds the
// parts committed before as duplicates.
const commitPart = 100

// commit enqueues b, in parts when it is large and carries no nonce (a
// nonce is single-use: its batch goes in one commit).
func (in *Ingress) commit(ctx context.Context, b *relay.Batch) ([]relay.Outcome, error) {
	if len(b.Events) <= commitPart || b.Nonce != "" {
		return in.Queue.Enqueue(ctx, b)
	}
	outs := make([]relay.Outcome, 0, len(b.Events))
	rawOf := ""
	for start := 0; start < len(b.Events); start += commitPart {
		part := &relay.Batch{Events: b.Events[start:min(start+commitPart, len(b.Events))]}
		for i := range part.Events {
			part.Events[i].RawOf = rawOf
		}
		o, err := in.Queue.Enqueue(ctx, part)
		if err != nil {
			return nil, err
		}
		for _, x := range o {
			if rawOf == "" && !x.Duplicate && !x.Conflict {
				rawOf = x.ID // the first new event holds the raw request
			}
		}
		outs = append(outs, o...)
	}
	return outs, nil
}
