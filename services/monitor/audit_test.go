package monitor_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// TestAuditAPINamesALostLedgerRow runs the whole monitor: a consumer
// finishes two events, the audit reports nothing missing; one event's
// ledger row is then deleted and the audit names it.
func TestAuditAPINamesALostLedgerRow(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cons, err := e.js.CreateOrUpdateConsumer(ctx, eventbus.StreamEvents, jetstream.ConsumerConfig{
		Durable: "deal-sync", FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE"), AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"au-1", "au-2"} {
		e.publishEvent(ctx, envelope(id, "m1", "ONCRMDEALUPDATE", "42", e.clock.Now(), eventsv1.Source_SOURCE_PUSH))
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		var env eventsv1.Envelope
		if err := proto.Unmarshal(m.Data(), &env); err != nil {
			t.Fatal(err)
		}
		e.publishOutcome(ctx, env.MessageId, "deal-sync", "m1", eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, 1, "", "")
		if err := m.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}

	var rep audit.Report
	e.eventually("a clean audit", 15*time.Second, func() bool {
		return e.get("/api/v1/audit?grace=1s", &rep) == http.StatusOK && rep.OK && rep.LedgerEvents == 2 && rep.InFlight == 0
	})
	if rep.StreamMessages != 2 || len(rep.Consumers) != 1 || rep.Consumers[0].Name != "deal-sync" || rep.Consumers[0].AckFloorSeq == 0 {
		t.Fatalf("clean audit = %+v", rep)
	}

	if _, err := e.pool.Exec(ctx, `DELETE FROM monitor.webhook_events WHERE id = 'au-2'`); err != nil {
		t.Fatal(err)
	}
	if code := e.get("/api/v1/audit?grace=1s", &rep); code != http.StatusOK {
		t.Fatalf("audit: %d", code)
	}
	if rep.OK || len(rep.Findings) != 1 || rep.Findings[0].EventID != "au-2" || rep.Findings[0].Reason != audit.ReasonMissingFromLedger {
		t.Fatalf("audit after a lost row = %+v", rep.Findings)
	}

	for _, q := range []string{"from=yesterday", "grace=-1m", "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
		"from=2025-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"} {
		if code := e.get("/api/v1/audit?"+q, nil); code != http.StatusBadRequest {
			t.Errorf("audit?%s: %d, want 400", q, code)
		}
	}
}
