package dealsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
	"github.com/jackc/pgx/v5"
)

// BenchmarkBulkEdit measures the bulk-edit storm against a fake portal at
// 2 req/s, burst 50: n deals edited twice (STAGE_ID, then OPPORTUNITY: one
// ONCRMDEALUPDATE per deal per field), pushed through a stand-in ingress.
// It reports the time from the last event stored to every deal mirrored in
// its final state, the REST requests made and QUERY_LIMIT_EXCEEDED answers.
//
// "deal-sync" is the service as shipped (batched, coalesced fetches);
// "naive" is one crm.deal.get per event, for comparison, on fewer deals
// because at 2 req/s it needs about (events-50)/2 seconds.
//
//	go test -run '^$' -bench BulkEdit -benchtime 1x ./services/deal-sync/
func BenchmarkBulkEdit(b *testing.B) {
	for _, tc := range []struct {
		name  string
		deals int
		naive bool
	}{
		{"deal-sync/deals=1000", 1000, false},
		{"naive/deals=100", 100, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				bulkEdit(b, tc.deals, tc.naive)
			}
		})
	}
}

func bulkEdit(b *testing.B, n int, naive bool) {
	b.StopTimer()
	e := newEnv(b, fakeportal.Config{Rate: 2, Burst: 50})
	if naive {
		startNaive(b, e)
	} else {
		e.start(fastConfig(), e.client)
	}
	ids := make([]int64, n) // created quietly: no events
	for i := range ids {
		ids[i] = e.portal.CreateDeal(map[string]string{"TITLE": fmt.Sprint("Deal ", i)}, false)
	}
	e.portal.ResetStats()
	published := e.ingress.Published()
	stored0 := storedEvents(b, e)
	b.StartTimer()

	e.portal.BulkEditDeals(n, map[string]string{"STAGE_ID": "WON"})
	e.portal.BulkEditDeals(n, map[string]string{"OPPORTUNITY": "500.00"})
	if err := e.portal.Drain(context.Background()); err != nil {
		b.Fatal(err)
	}
	lastEvent := time.Now() // every push answered: every event is stored
	events := e.ingress.Published() - published
	e.eventually("all mirrored", func() bool {
		var done int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM deal_sync.deals
			WHERE member_id = $1 AND fields->>'STAGE_ID' = 'WON' AND fields->>'OPPORTUNITY' = '500.00'`, e.member).Scan(&done)
		return err == nil && done == len(ids)
	})
	after := time.Since(lastEvent)
	b.StopTimer()
	st := e.portal.Stats()
	b.ReportMetric(after.Seconds(), "s-after-last-event")
	b.ReportMetric(float64(events), "pushes")
	b.ReportMetric(float64(storedEvents(b, e)-stored0), "stored-events")
	b.ReportMetric(float64(st.Requests), "rest-requests")
	b.ReportMetric(float64(st.QueryLimitExceeded), "query-limit-exceeded")
}

// startNaive runs the strawman: one crm.deal.get per event, no batching,
// no coalescing, mirrored with the same store.
func startNaive(b *testing.B, e *env) {
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		b.Fatal(err)
	}
	st := store.New(e.pool)
	rt, err := consumer.New(e.srv.Connect(b), consumer.WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	spec := dealevents.Spec()
	spec.AckWait = 30 * time.Second
	err = consumer.Register(rt, spec, consumer.DecodeEnvelope, consumer.HandlerFunc[*eventsv1.Envelope](
		func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
			id, _ := bitrix.ParseID(m.EntityID)
			d, err := e.client.GetDeal(ctx, id)
			if err != nil {
				return err
			}
			return st.Tx(ctx, func(tx pgx.Tx) error {
				return store.SaveDeal(ctx, tx, store.Deal{MemberID: m.MemberID, ID: int64(id), Fields: d.Fields, Hash: fmt.Sprint(time.Now().UnixNano())})
			})
		}))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	go func() { _ = rt.Run(ctx) }()
}

// storedEvents is the number of raw events in the stream: pushes minus the
// copies JetStream de-duplicated by message id.
func storedEvents(b *testing.B, e *env) uint64 {
	st, err := e.js.Stream(context.Background(), "B24_EVENTS")
	if err != nil {
		b.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}
