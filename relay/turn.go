package relay

// SubjectQueue is one subject's queue of ordered deliveries to one target
// (see Order), as a store holds it under the subject's lock for
// OrderedTurn. Deliveries are named by their event ids.
type SubjectQueue interface {
	// Order returns id's delivery's Order.
	Order(id string) (Order, error)
	// Ends returns the first and the last delivery of the queue ("" when
	// it is empty).
	Ends() (first, last string, err error)
	// NewerDelivered returns the id of an event about the subject that
	// occurred after id's and was delivered to the target already (""
	// when there is none).
	NewerDelivered(id string) (string, error)
	// Skip makes id's delivery skipped with reason and takes it out of
	// the queue; the queue's next delivery becomes its active one.
	Skip(id, reason string) error
	// Ready reports whether id's delivery, the queue's active one, can be
	// handed out now: it is not in flight and is due.
	Ready(id string) (bool, error)
}

// OrderedTurn decides what becomes of id's delivery, the active delivery
// of q, which is due now. As its Order says: with Coalesce, the
// subject's newest delivery takes its place (id's and those in between are
// skipped). A delivery older than one delivered already is skipped (Skip;
// the queue's next delivery then gets its turn when it is ready) or handed
// out out of order. It returns the delivery to hand out ("" for none),
// whether it is out of order, and how many deliveries it skipped.
func OrderedTurn(q SubjectQueue, id string) (turn string, outOfOrder bool, skipped int, err error) {
	for {
		o, err := q.Order(id)
		if err != nil {
			return "", false, skipped, err
		}
		if o.Coalesce {
			_, last, err := q.Ends()
			if err != nil {
				return "", false, skipped, err
			}
			if last != "" && last != id {
				for {
					first, _, err := q.Ends()
					if err != nil {
						return "", false, skipped, err
					}
					if first == "" || first == last {
						break
					}
					if err := q.Skip(first, "coalesced: event "+last+" about "+o.Key+" supersedes it"); err != nil {
						return "", false, skipped, err
					}
					skipped++
				}
				id = last
				if o, err = q.Order(id); err != nil {
					return "", false, skipped, err
				}
			}
		}
		newer, err := q.NewerDelivered(id)
		if err != nil || newer == "" {
			return id, false, skipped, err
		}
		if !o.Skip {
			return id, true, skipped, nil
		}
		if err := q.Skip(id, "out of order: event "+newer+" about "+o.Key+", which occurred later, was delivered already"); err != nil {
			return "", false, skipped, err
		}
		skipped++
		next, _, err := q.Ends()
		if err != nil || next == "" {
			return "", false, skipped, err
		}
		if ok, err := q.Ready(next); err != nil || !ok {
			return "", false, skipped, err
		}
		id = next
	}
}
