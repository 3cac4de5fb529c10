package consumertest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// The suite run against the runtime itself, with a handler that keeps the
// contract: single and batch.

func envelope(member, event, entity, id string) *eventsv1.Envelope {
	return &eventsv1.Envelope{MessageId: id, MemberId: member, Event: event, EntityId: entity}
}

// store is a tiny idempotent "mirror": the last event id applied per entity.
type store struct {
	mu   sync.Mutex
	rows map[string]string
}

func (s *store) apply(m *consumer.Message[*eventsv1.Envelope]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := m.MemberID + "/" + m.EntityID
	if s.rows[key] == m.EventID {
		return consumer.Skip("already applied")
	}
	s.rows[key] = m.EventID
	return nil
}

func (s *store) fingerprint(testing.TB) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprint(s.rows)
}

func TestConformanceSingle(t *testing.T) {
	st := &store{rows: map[string]string{}}
	consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
		Spec:   consumer.Spec{Durable: "conformance-single", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE")},
		Decode: consumer.DecodeEnvelope,
		Handler: consumer.HandlerFunc[*eventsv1.Envelope](func(_ context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
			return st.apply(m)
		}),
		Valid: []consumertest.Fixture{
			consumertest.EnvelopeFixture(envelope("m1", "ONCRMDEALUPDATE", "1", "e1")),
			consumertest.EnvelopeFixture(envelope("m1", "ONCRMDEALUPDATE", "2", "e2")),
		},
		Effects: st.fingerprint,
	})
}

func TestConformanceBatch(t *testing.T) {
	st := &store{rows: map[string]string{}}
	consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
		Spec:   consumer.Spec{Durable: "conformance-batch", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE")},
		Decode: consumer.DecodeEnvelope,
		BatchHandler: consumer.BatchHandlerFunc[*eventsv1.Envelope](func(_ context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
			errs := make([]error, len(b))
			for i, m := range b {
				errs[i] = st.apply(m)
			}
			return errs
		}),
		Valid: []consumertest.Fixture{
			consumertest.EnvelopeFixture(envelope("m1", "ONCRMDEALUPDATE", "1", "e1")),
			consumertest.EnvelopeFixture(envelope("m2", "ONCRMDEALUPDATE", "1", "e2")),
			consumertest.EnvelopeFixture(envelope("m1", "ONCRMDEALUPDATE", "3", "e3")),
		},
		Effects: st.fingerprint,
	})
}
