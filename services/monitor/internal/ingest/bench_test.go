package ingest_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/ingest"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/schema"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// BenchmarkLedgerConsumer measures the whole monitor-ledger path: b.N raw
// events already in an embedded JetStream are fetched by the durable
// consumer, decoded, written in batches to PostgreSQL and acknowledged.
// Publishing happens before the timer starts. Run with -benchtime=Nx.
func BenchmarkLedgerConsumer(b *testing.B) {
	for _, size := range []int{500, 1000} {
		b.Run(fmt.Sprintf("batch-%d", size), func(b *testing.B) { benchLedgerConsumer(b, size) })
	}
}

func benchLedgerConsumer(b *testing.B, batch int) {
	ctx := context.Background()
	srv := natstest.Start(b)
	_, js := srv.JetStream(b)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		b.Fatal(err)
	}
	pool := pgtest.NewPool(b)
	if err := schema.Migrate(ctx, pool); err != nil {
		b.Fatal(err)
	}
	store := ledger.NewStore(pool)
	if _, err := store.MaintainPartitions(ctx, time.Now(), 30*24*time.Hour); err != nil {
		b.Fatal(err)
	}
	var futs []jetstream.PubAckFuture
	for i := range b.N {
		id := fmt.Sprintf("bench-%d", i)
		member := fmt.Sprintf("portal%d", i%50)
		env, _ := proto.Marshal(&eventsv1.Envelope{MessageId: id, MemberId: member, Domain: member + ".bitrix24.ru",
			Event: "ONCRMDEALUPDATE", EntityId: fmt.Sprint(i % 10000), ReceivedAt: timestamppb.Now(),
			Source: eventsv1.Source_SOURCE_PUSH, ContentType: "application/x-www-form-urlencoded",
			Body: []byte("event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=" + fmt.Sprint(i) + "&ts=1700000000&auth%5Bmember_id%5D=" + member)})
		// A long stall wait: on a busy machine the broker acknowledges
		// slower than this loop publishes, and the library's default
		// (200 ms at 4,000 pending) failed the seeding, not the benchmark.
		f, err := js.PublishAsync(eventbus.RawEvent(member, "ONCRMDEALUPDATE"), env, jetstream.WithMsgID(id), jetstream.WithStallWait(time.Minute))
		if err != nil {
			b.Fatal(err)
		}
		futs = append(futs, f)
	}
	for _, f := range futs {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := ingest.NewConsumer(js, ingest.LedgerSpec, ingest.EventWriter(store, log), ingest.Options{BatchSize: batch}, log)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	b.ResetTimer()
	start := time.Now()
	go func() { _ = c.Run(runCtx) }()
	for {
		var n int
		if err := pool.QueryRow(ctx, "SELECT count(*) FROM monitor.webhook_events").Scan(&n); err != nil {
			b.Fatal(err)
		}
		if n == b.N {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
}
