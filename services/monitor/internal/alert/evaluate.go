package alert

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
)

// Input is what one evaluation reads.
type Input struct {
	// Now is the evaluation time (the injectable clock).
	Now time.Time
	// Since is when this evaluator started; a portal named in a rule that
	// never sent the event counts as quiet since then.
	Since time.Time
	// LastSeen is the ledger's last_seen table.
	LastSeen []ledger.LastSeen
	// Counts holds outcome counts per rule window, keyed by the window.
	Counts map[time.Duration][]ledger.OutcomeCount
	// Watched reports whether a portal is live: registered and not
	// uninstalled. Rules whose target is a portal (silence, probe,
	// error_kind) observe only watched portals, so a portal that is gone
	// stops being evaluated and its alerts resolve. Nil watches every
	// portal.
	Watched func(memberID string) bool
	// Unfinished is the oldest unfinished event of each durable consumer
	// (retention rules).
	Unfinished []UnfinishedAge
}

// UnfinishedAge is how far behind one durable consumer is, measured in
// the age of its oldest unfinished event against its stream's retention.
type UnfinishedAge struct {
	Consumer string
	Stream   string
	// Oldest is when the oldest event not finished at the consumer was
	// stored; zero when nothing is unfinished.
	Oldest time.Time
	// MaxAge is the stream's retention; zero means unlimited.
	MaxAge time.Duration
}

// Age is how old the oldest unfinished event is at now (0 when none).
func (u UnfinishedAge) Age(now time.Time) time.Duration {
	if u.Oldest.IsZero() || now.Before(u.Oldest) {
		return 0
	}
	return now.Sub(u.Oldest)
}

// watched reports whether in watches portal.
func (in Input) watched(portal string) bool { return in.Watched == nil || in.Watched(portal) }

// TargetsPortal reports whether rules of kind target a portal (rather than
// a consumer).
func TargetsPortal(kind string) bool {
	return kind == KindSilence || kind == KindProbe || kind == KindErrorKind
}

// Observation is one rule instance's condition at evaluation time.
type Observation struct {
	// Key is Rule + "/" + Target: the alert's identity.
	Key    string
	Rule   string
	Kind   string
	Target string // a portal (member id) or a consumer
	Firing bool
	// Value is the measured quantity: quiet seconds, failure share or a count.
	Value   float64
	Message string
}

// Windows lists the distinct windows the rules need counts for.
func (r Rules) Windows() []time.Duration {
	var out []time.Duration
	for _, rule := range r.Rules {
		switch rule.Kind {
		case KindErrorRate, KindDeadLetters, KindErrorKind:
			if w := time.Duration(rule.Window); !slices.Contains(out, w) {
				out = append(out, w)
			}
		}
	}
	return out
}

// Evaluate observes every rule instance. It is a pure function of its input.
func Evaluate(rules Rules, in Input) []Observation {
	var out []Observation
	for _, r := range rules.Rules {
		switch r.Kind {
		case KindSilence, KindProbe:
			out = append(out, evalQuiet(r, in)...)
		case KindErrorRate:
			out = append(out, evalErrorRate(r, in)...)
		case KindDeadLetters:
			out = append(out, evalDeadLetters(r, in)...)
		case KindErrorKind:
			out = append(out, evalErrorKind(r, in)...)
		case KindRetention:
			out = append(out, evalRetention(r, in)...)
		}
	}
	return out
}

func observation(r Rule, target string, firing bool, value float64, msg string) Observation {
	return Observation{Key: r.Name + "/" + target, Rule: r.Name, Kind: r.Kind, Target: target, Firing: firing, Value: value, Message: msg}
}

func evalQuiet(r Rule, in Input) []Observation {
	type seen struct {
		at     time.Time
		domain string
	}
	last := map[string]seen{}
	for _, l := range in.LastSeen {
		if l.EventType != r.Event || !slices.Contains(r.Sources, l.Source) {
			continue
		}
		if cur, ok := last[l.Portal]; !ok || l.LastReceivedAt.After(cur.at) {
			last[l.Portal] = seen{l.LastReceivedAt, l.Domain}
		}
	}
	portals := r.Portals
	if len(portals) == 0 {
		for p := range last {
			portals = append(portals, p)
		}
		sort.Strings(portals)
	}
	out := make([]Observation, 0, len(portals))
	for _, p := range portals {
		if !in.watched(p) {
			continue
		}
		s, ok := last[p]
		if !ok {
			s.at = in.Since
		}
		quiet := r.cal.BusinessDuration(s.at, in.Now)
		firing := quiet > time.Duration(r.MaxQuiet)
		who := p
		if s.domain != "" {
			who = p + " (" + s.domain + ")"
		}
		var msg string
		switch {
		case r.Kind == KindProbe && firing:
			msg = fmt.Sprintf("probe failed: no %s from portal %s within %s (last %s)", r.Event, who, time.Duration(r.MaxQuiet), lastText(s.at, ok))
		case r.Kind == KindProbe:
			msg = fmt.Sprintf("probe ok: %s from portal %s %s", r.Event, who, lastText(s.at, ok))
		case firing:
			msg = fmt.Sprintf("no %s from portal %s for %s of business hours (limit %s, last %s)",
				r.Event, who, quiet.Round(time.Second), time.Duration(r.MaxQuiet), lastText(s.at, ok))
		default:
			msg = fmt.Sprintf("%s from portal %s flowing (last %s)", r.Event, who, lastText(s.at, ok))
		}
		out = append(out, observation(r, p, firing, quiet.Seconds(), msg))
	}
	return out
}

func lastText(at time.Time, ok bool) string {
	if !ok {
		return "never since the monitor started"
	}
	return at.UTC().Format(time.RFC3339)
}

// perTarget sums counts of the rule's window by target.
func perTarget(r Rule, in Input, target func(ledger.OutcomeCount) string, keep func(ledger.OutcomeCount) bool) map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for _, c := range in.Counts[time.Duration(r.Window)] {
		if len(r.Consumers) > 0 && !slices.Contains(r.Consumers, c.Consumer) {
			continue
		}
		if !keep(c) {
			continue
		}
		t := target(c)
		if out[t] == nil {
			out[t] = map[string]int64{}
		}
		out[t][c.Kind] += c.N
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func evalErrorRate(r Rule, in Input) []Observation {
	by := perTarget(r, in, func(c ledger.OutcomeCount) string { return c.Consumer },
		func(c ledger.OutcomeCount) bool { return c.Kind != ledger.CountDeadLetter })
	var out []Observation
	for _, consumer := range sortedKeys(by) {
		k := by[consumer]
		total := k[ledger.CountDone] + k[ledger.CountRetry] + k[ledger.CountDead] + k[ledger.CountSkipped]
		failed := k[ledger.CountRetry] + k[ledger.CountDead]
		if total == 0 {
			continue
		}
		share := float64(failed) / float64(total)
		firing := total >= int64(r.MinAttempts) && share >= r.Threshold
		out = append(out, observation(r, consumer, firing, share, fmt.Sprintf(
			"consumer %s: %d of %d attempts failed in %s (%.0f%%, limit %.0f%%)",
			consumer, failed, total, time.Duration(r.Window), 100*share, 100*r.Threshold)))
	}
	return out
}

func evalDeadLetters(r Rule, in Input) []Observation {
	by := perTarget(r, in, func(c ledger.OutcomeCount) string { return c.Consumer },
		func(c ledger.OutcomeCount) bool {
			return c.Kind == ledger.CountDeadLetter || c.Kind == ledger.CountDead
		})
	var out []Observation
	for _, consumer := range sortedKeys(by) {
		n := max(by[consumer][ledger.CountDeadLetter], by[consumer][ledger.CountDead])
		out = append(out, observation(r, consumer, float64(n) >= r.Threshold, float64(n), fmt.Sprintf(
			"consumer %s dead-lettered %d events in %s", consumer, n, time.Duration(r.Window))))
	}
	return out
}

func evalErrorKind(r Rule, in Input) []Observation {
	by := perTarget(r, in, func(c ledger.OutcomeCount) string { return c.Portal },
		func(c ledger.OutcomeCount) bool { return c.ErrorKind == r.ErrorKind })
	var out []Observation
	for _, portal := range sortedKeys(by) {
		if !in.watched(portal) {
			continue
		}
		var n int64
		for _, v := range by[portal] {
			n += v
		}
		out = append(out, observation(r, portal, float64(n) >= r.Threshold, float64(n), fmt.Sprintf(
			"portal %s: %d attempts failed with %s in %s", portal, n, r.ErrorKind, time.Duration(r.Window))))
	}
	return out
}

func evalRetention(r Rule, in Input) []Observation {
	var out []Observation
	for _, u := range in.Unfinished {
		if u.MaxAge <= 0 || len(r.Consumers) > 0 && !slices.Contains(r.Consumers, u.Consumer) {
			continue
		}
		age := u.Age(in.Now)
		limit := time.Duration(r.Fraction * float64(u.MaxAge))
		firing := age > limit
		var msg string
		if firing {
			msg = fmt.Sprintf("consumer %s: the oldest unfinished event of %s is %s old, more than %.0f%% of the stream's max age %s: it is dropped unseen at %s (runbook: %s)",
				u.Consumer, u.Stream, age.Round(time.Second), 100*r.Fraction, u.MaxAge, u.Oldest.Add(u.MaxAge).UTC().Format(time.RFC3339), r.Runbook)
		} else {
			msg = fmt.Sprintf("consumer %s: oldest unfinished event of %s is %s old (limit %s)", u.Consumer, u.Stream, age.Round(time.Second), limit)
		}
		out = append(out, observation(r, u.Consumer, firing, age.Seconds(), msg))
	}
	return out
}
