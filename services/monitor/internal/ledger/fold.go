package ledger

import (
	"slices"
	"strings"
	"time"
)

// deliveryKey identifies one delivery row.
type deliveryKey struct{ EventID, Consumer string }

func (k deliveryKey) compare(o deliveryKey) int {
	if c := strings.Compare(k.EventID, o.EventID); c != 0 {
		return c
	}
	return strings.Compare(k.Consumer, o.Consumer)
}

// deliveryRow is the state of one delivery row while a batch is folded into
// it. Zero times mean NULL.
type deliveryRow struct {
	deliveryKey
	Portal, EventType, EntityID string
	Status                      string
	Attempts                    int
	LastError, ErrorKind        string
	FirstAt, LastAt             time.Time
	DurationMS                  float64
	TraceID                     string
	DeadReason                  string
	DeadAt                      time.Time
	DeadSeq                     uint64
}

// countKey is one cell of outcome_counts.
type countKey struct {
	Bucket                          time.Time
	Consumer, Portal, Kind, ErrKind string
}

// Kinds counted in outcome_counts.
const (
	CountDone       = "done"
	CountRetry      = "retry"
	CountDead       = "dead"
	CountSkipped    = "skipped"
	CountDeadLetter = "dead_letter"
)

func countKind(status string) string {
	switch status {
	case StatusError:
		return CountRetry
	case StatusDead:
		return CountDead
	case StatusSkipped:
		return CountSkipped
	default:
		return CountDone
	}
}

func fillEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

// applyAttempt folds one attempt into r and reports whether the attempt is
// new (and so must be counted). An attempt is new when its number is higher
// than any seen, or when it is later with another status: a runtime may
// report RETRY and then DEAD for the last delivery, and a broker that died
// before saving a consumer's state delivers the message again with the
// count it had saved (or from 1), so the attempt that finally succeeds can
// carry a number already seen or a lower one. A redelivered outcome
// message is neither applied twice nor counted twice. A dead
// delivery stays dead: JetStream terminated the message, so no later attempt
// of the same message can exist; a replay is a new event.
func (r *deliveryRow) applyAttempt(a Attempt) bool {
	fillEmpty(&r.Portal, a.Portal)
	fillEmpty(&r.EventType, a.EventType)
	fillEmpty(&r.EntityID, a.EntityID)
	fillEmpty(&r.TraceID, a.TraceID)
	if !a.At.IsZero() && (r.FirstAt.IsZero() || a.At.Before(r.FirstAt)) {
		r.FirstAt = a.At
	}
	newer := a.Attempt > r.Attempts || (a.At.After(r.LastAt) && a.Status != r.Status)
	if !newer {
		return false
	}
	r.Attempts = max(r.Attempts, a.Attempt)
	// A failure never replaces a success. JetStream delivers a message
	// again while this client still holds it (buffered in the NATS client
	// past AckWait without InProgress, or re-pulled after a reconnect): two
	// copies run, the first succeeds and is acknowledged, and the stale
	// copy's failure, reported later and with a higher attempt number, is
	// not a state the message can be in any more (its Nak comes after the
	// Ack and is ignored, nothing is redelivered). A message that does fail
	// for good after a success ends dead-lettered, and that still wins.
	// Likewise a stale copy's skip never replaces the first copy's "done":
	// the copy finds the work already done ("covered by a later fetch", "no
	// change"), which says nothing new about the event.
	stale := (a.Status == StatusError && (r.Status == StatusDone || r.Status == StatusSkipped)) ||
		(a.Status == StatusSkipped && r.Status == StatusDone)
	if r.Status != StatusDead && !stale {
		r.Status = a.Status
	}
	switch {
	case stale:
	case a.Status == StatusDone || a.Status == StatusSkipped:
		r.LastError, r.ErrorKind = "", ""
	default:
		r.LastError, r.ErrorKind = a.Error, a.ErrorKind
	}
	if a.At.After(r.LastAt) {
		r.LastAt = a.At
	}
	r.DurationMS = float64(a.Duration) / float64(time.Millisecond)
	if a.TraceID != "" {
		r.TraceID = a.TraceID
	}
	return true
}

// applyDead folds a dead letter into r and reports whether it is the first
// dead letter of this delivery (and so must be counted).
func (r *deliveryRow) applyDead(d DeadLetter) bool {
	fillEmpty(&r.Portal, d.Event.Portal)
	fillEmpty(&r.EventType, d.Event.EventType)
	fillEmpty(&r.EntityID, d.Event.EntityID)
	fillEmpty(&r.TraceID, d.Event.TraceID)
	first := r.DeadAt.IsZero()
	r.Status = StatusDead
	r.DeadReason = d.Reason
	if first || d.At.Before(r.DeadAt) {
		r.DeadAt = d.At
		r.DeadSeq = d.StreamSeq
	}
	if d.Error != "" {
		r.LastError = d.Error
	}
	if d.Deliveries > r.Attempts {
		r.Attempts = d.Deliveries
	}
	if r.LastAt.IsZero() || d.At.After(r.LastAt) {
		r.LastAt = d.At
	}
	if r.FirstAt.IsZero() {
		r.FirstAt = d.At
	}
	return first
}

// fold applies attempts and dead letters (in that order, each in message
// order) to the existing rows and returns every changed row sorted by key
// (so concurrent writers lock rows in one order) and the counts to add.
func fold(existing map[deliveryKey]*deliveryRow, attempts []Attempt, dead []DeadLetter) ([]*deliveryRow, map[countKey]int64) {
	rows := existing
	if rows == nil {
		rows = map[deliveryKey]*deliveryRow{}
	}
	changed := map[deliveryKey]bool{}
	counts := map[countKey]int64{}
	get := func(k deliveryKey) *deliveryRow {
		r, ok := rows[k]
		if !ok {
			r = &deliveryRow{deliveryKey: k, Status: StatusPending}
			rows[k] = r
		}
		changed[k] = true
		return r
	}
	for _, a := range attempts {
		r := get(deliveryKey{a.EventID, a.Consumer})
		if r.applyAttempt(a) {
			ek := ""
			if a.Status != StatusDone && a.Status != StatusSkipped {
				ek = a.ErrorKind
			}
			counts[countKey{a.At.UTC().Truncate(time.Minute), a.Consumer, r.Portal, countKind(a.Status), ek}]++
		}
	}
	for _, d := range dead {
		r := get(deliveryKey{d.Event.ID, d.Consumer})
		if r.applyDead(d) {
			counts[countKey{d.At.UTC().Truncate(time.Minute), d.Consumer, r.Portal, CountDeadLetter, ""}]++
		}
	}
	out := make([]*deliveryRow, 0, len(changed))
	for k := range changed {
		out = append(out, rows[k])
	}
	slices.SortFunc(out, func(a, b *deliveryRow) int { return a.compare(b.deliveryKey) })
	return out, counts
}
