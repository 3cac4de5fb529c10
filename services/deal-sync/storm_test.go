package dealsync_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// TestStormIsCoalescedWithinLimits is the bulk-edit storm: one event per
// deal per edited field. Every deal ends mirrored with its final state, one
// fetch serves many events, and the portal never answers
// QUERY_LIMIT_EXCEEDED.
func TestStormIsCoalescedWithinLimits(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)
	const n = 300
	ids := e.portal.BulkEditDeals(n, map[string]string{"STAGE_ID": "WON"})
	e.portal.BulkEditDeals(n, map[string]string{"OPPORTUNITY": "500.00"})
	e.idle()
	for _, id := range ids {
		row, ok := e.mirror(id)
		if !ok || row.fields["STAGE_ID"] != "WON" || row.fields["OPPORTUNITY"] != "500.00" {
			t.Fatalf("deal %d not mirrored in its final state: %+v", id, row)
		}
	}
	st := e.portal.Stats()
	if st.QueryLimitExceeded != 0 {
		t.Errorf("%d QUERY_LIMIT_EXCEEDED answers", st.QueryLimitExceeded)
	}
	events := e.ingress.Published()
	gets := e.portal.MethodCalls("crm.deal.get")
	t.Logf("%d events, %d crm.deal.get in %d batch requests, %d REST requests", events, gets, st.Batches, st.Requests)
	if gets >= events {
		t.Errorf("%d fetches for %d events: nothing was coalesced", gets, events)
	}
}

// TestKilledMidBatchLosesNothingAndDoesNothingTwice kills a consumer after
// it mirrored half a batch and before it acknowledged anything; the next
// process finishes the work, and every deal has exactly one change.
func TestKilledMidBatchLosesNothingAndDoesNothingTwice(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	var ids []int64
	for i := range 20 {
		id := e.portal.CreateDeal(map[string]string{"TITLE": fmt.Sprint("Deal ", i)}, false)
		ids = append(ids, id)
		e.publishRaw(id, "ONCRMDEALADD", fmt.Sprint("add-", id))
	}
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	// The doomed process: handles the first half of its first batch, then
	// dies without acknowledging anything.
	doomed := e.srv.Connect(t)
	rt, err := consumer.New(doomed, consumer.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	real := dealevents.New(bitrixport.Static{Client: e.client}, store.New(e.pool), nil, dealevents.Options{EchoTTL: time.Minute}, quiet())
	killed := make(chan struct{})
	var once sync.Once
	spec := dealevents.Spec()
	spec.AckWait = time.Second
	spec.BatchWindow = 300 * time.Millisecond
	err = consumer.RegisterBatch(rt, spec, consumer.DecodeEnvelope, consumer.BatchHandlerFunc[*eventsv1.Envelope](
		func(ctx context.Context, b []*consumer.Message[*eventsv1.Envelope]) []error {
			half := b[:len(b)/2]
			_ = real.HandleBatch(ctx, half)
			once.Do(func() { doomed.Close(); close(killed) })
			<-ctx.Done()
			return consumer.FailAll(len(b), ctx.Err())
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = rt.Run(ctx) }()
	<-killed
	cancel()

	// The next process picks the batch up after AckWait.
	cfg := fastConfig()
	cfg.Consumer.AckWait = time.Second
	e.start(cfg, e.client)
	e.eventually("every deal mirrored", func() bool {
		for _, id := range ids {
			if _, ok := e.mirror(id); !ok {
				return false
			}
		}
		return true
	})
	e.idle()
	for _, id := range ids {
		if n := len(e.changesFor(id)); n != 1 {
			t.Errorf("deal %d: %d changes, want exactly 1", id, n)
		}
	}
	var queued int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM deal_sync.outbox`).Scan(&queued)
	if queued != len(ids) {
		t.Errorf("%d changes queued for %d deals", queued, len(ids))
	}
}
