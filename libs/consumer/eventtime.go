package consumer

import (
	"context"
	"time"
)

// DefaultSettle is how long after an event's ts a handler should wait before
// fetching state; see WaitSettled.
const DefaultSettle = 2 * time.Second

// WaitSettled blocks until settle has passed since the newest of the given
// event timestamps (the portal's ts, whole seconds), or ctx ends.
//
// Why: the ingress derives message ids from (portal, event, handler, ts,
// data), and Bitrix24 events carry only an entity id and a ts in whole
// seconds, so two changes of one entity within the same second produce the
// same id and JetStream keeps one message. A fetch made after the end of that
// second sees both changes; one made between them would miss the second
// until the next event or reconciliation. settle covers the second itself
// plus clock skew between the portal and us. A ts far in the future (a
// skewed portal clock) never makes a handler wait longer than settle.
func WaitSettled(ctx context.Context, now time.Time, settle time.Duration, ts ...time.Time) error {
	var newest time.Time
	for _, t := range ts {
		if t.After(newest) {
			newest = t
		}
	}
	if newest.IsZero() || settle <= 0 {
		return nil
	}
	wait := min(newest.Add(settle).Sub(now), settle)
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
