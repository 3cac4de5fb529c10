package consumer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

type kindErr struct{ kind string }

func (e kindErr) Error() string     { return "kinded " + e.kind }
func (e kindErr) ErrorKind() string { return e.kind }

func TestDecide(t *testing.T) {
	spec := Spec{Durable: "d", FilterSubjects: []string{"x"}}.WithDefaults()
	transient := errors.New("boom")
	tests := []struct {
		name     string
		err      error
		delivery uint64
		shutting bool
		want     Action
	}{
		{"success", nil, 1, false, Action{Verb: VerbAck, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE}},
		{"skip", Skip("echo"), 1, false, Action{Verb: VerbAck, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED}},
		{"wrapped skip", fmt.Errorf("x: %w", Skip("no change")), 2, false, Action{Verb: VerbAck, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED}},
		{"transient first", transient, 1, false, Action{Verb: VerbNak, Delay: time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindTransient}},
		{"transient second", transient, 2, false, Action{Verb: VerbNak, Delay: 5 * time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindTransient}},
		{"transient third", transient, 3, false, Action{Verb: VerbNak, Delay: 15 * time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindTransient}},
		{"transient last", transient, 4, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "max_deliveries", Kind: KindMaxDeliveries}},
		{"beyond last (crash reserve)", transient, 6, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "max_deliveries", Kind: KindMaxDeliveries}},
		{"permanent", Permanent(transient), 1, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "permanent", Kind: KindPermanent}},
		{"wrapped permanent", fmt.Errorf("load: %w", Permanent(transient)), 1, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "permanent", Kind: KindPermanent}},
		{"undecodable", fmt.Errorf("%w: bad", ErrUndecodable), 1, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "undecodable", Kind: KindUndecodable}},
		{"retry after", RetryAfter(7*time.Second, transient), 1, false, Action{Verb: VerbNak, Delay: 7 * time.Second, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindTransient}},
		{"retry after on last", RetryAfter(7*time.Second, transient), 4, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "max_deliveries", Kind: KindMaxDeliveries}},
		{"panic", &PanicError{Value: "x"}, 1, false, Action{Verb: VerbNak, Delay: time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindPanic}},
		{"kinded", fmt.Errorf("call: %w", kindErr{"overload_limit"}), 1, false, Action{Verb: VerbNak, Delay: time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: "overload_limit"}},
		{"kinded last keeps kind", kindErr{"reauthorize"}, 4, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "max_deliveries", Kind: "reauthorize"}},
		{"kinded permanent", Permanent(kindErr{"reauthorize"}), 1, false, Action{Verb: VerbDead, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_DEAD, Reason: "permanent", Kind: "reauthorize"}},
		{"cancel while draining", context.Canceled, 4, true, Action{Verb: VerbNak, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindShutdown}},
		{"cancel while running", context.Canceled, 1, false, Action{Verb: VerbNak, Delay: time.Minute, Status: eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, Kind: KindTransient}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(spec, Attempt{Delivery: tt.delivery, ShuttingDown: tt.shutting}, tt.err)
			if got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestErrorHelpers(t *testing.T) {
	base := errors.New("base")
	if !errors.Is(Permanent(base), ErrPermanent) || !errors.Is(Permanent(base), base) {
		t.Error("Permanent must match ErrPermanent and the wrapped error")
	}
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	if !errors.Is(RetryAfter(time.Second, base), base) {
		t.Error("RetryAfter must wrap its error")
	}
	if RetryAfter(time.Second, nil) == nil {
		t.Error("RetryAfter(d, nil) must still be an error")
	}
}

func TestSpec(t *testing.T) {
	s := Spec{Durable: "deal-sync", FilterSubjects: []string{"b24.events.*.ONCRMDEALADD"}}.WithDefaults()
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if s.MaxDeliver != 4 || s.Stream != "B24_EVENTS" || s.AckWait != DefaultAckWait {
		t.Errorf("defaults: %+v", s)
	}
	cc := s.ConsumerConfig()
	if cc.Durable != "deal-sync" || cc.MaxDeliver != 4+serverDeliverReserve || len(cc.BackOff) != 0 {
		t.Errorf("consumer config: %+v", cc)
	}
	for d, want := range map[uint64]time.Duration{0: time.Minute, 1: time.Minute, 2: 5 * time.Minute, 3: 15 * time.Minute, 9: 15 * time.Minute} {
		if got := s.backoff(d); got != want {
			t.Errorf("backoff(%d) = %s, want %s", d, got, want)
		}
	}
	bad := []Spec{
		{Durable: "has.dot", FilterSubjects: []string{"x"}},
		{Durable: "ok"},
		{Durable: "ok", FilterSubjects: []string{"x"}, AckWait: time.Millisecond},
		{Durable: "ok", FilterSubjects: []string{"x"}, Backoff: []time.Duration{-1}},
		{Durable: "ok", FilterSubjects: []string{"x"}, Concurrency: 10, BatchSize: 50, MaxAckPending: 100},
	}
	for _, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted", b)
		}
	}
}

func TestFallbackMeta(t *testing.T) {
	m := fallbackMeta(RawMessage{Subject: "b24.events.m1.ONCRMDEALADD"})
	if m.MemberID != "m1" || m.Event != "ONCRMDEALADD" {
		t.Errorf("raw: %+v", m)
	}
	m = fallbackMeta(RawMessage{Subject: "b24.commands.deal.m2.update"})
	if m.MemberID != "m2" || m.Event != "deal-update" {
		t.Errorf("command: %+v", m)
	}
	if token("a.b") != "unknown" || token("") != "unknown" || token("m1") != "m1" {
		t.Error("token")
	}
}

func TestTuningFromEnv(t *testing.T) {
	env := map[string]string{"X_ACK_WAIT": "10s", "X_BACKOFF": "1s, 2s", "X_CONCURRENCY": "2"}
	tu, err := TuningFromEnv(func(k string) string { return env[k] }, "X_")
	if err != nil {
		t.Fatal(err)
	}
	s := tu.Apply(Spec{Durable: "d", MaxDeliver: 9})
	if s.AckWait != 10*time.Second || len(s.Backoff) != 2 || s.Backoff[1] != 2*time.Second || s.Concurrency != 2 || s.MaxDeliver != 9 {
		t.Errorf("applied %+v", s)
	}
	env = map[string]string{"X_BACKOFF": "soon", "X_MAX_DELIVER": "-1"}
	if _, err := TuningFromEnv(func(k string) string { return env[k] }, "X_"); err == nil {
		t.Error("bad values accepted")
	}
}
