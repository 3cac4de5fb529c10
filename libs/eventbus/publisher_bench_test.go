package eventbus_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace/noop"
)

// BenchmarkPublishPaths is the publish path alone, 64 goroutines publishing
// 1 KiB messages with unique ids to a file-storage stream on an embedded
// broker: eventbus.Publisher next to a thin wrapper over the library
// (jetstream.PublishMsgAsync with WithPublishAsyncMaxPending and
// WithPublishAsyncTimeout, each caller waiting for its own future; the
// wrapper the ingress benchmark runs as its "async" path) and the
// synchronous jetstream.PublishMsg. Spans are off in all three (a no-op
// tracer): what differs is only how a message gets to the broker and its
// PubAck back. cpu-µs/op is the whole process's CPU time per message
// (broker included), which on a shared machine moves less than ns/op.
//
//	go test -run '^$' -bench PublishPaths -benchtime 20000x -count 6 ./libs/eventbus
func BenchmarkPublishPaths(b *testing.B) {
	data := make([]byte, 1024)
	for _, path := range []string{"eventbus", "async", "sync"} {
		b.Run(path, func(b *testing.B) {
			srv := natstest.Start(b)
			nc, js := srv.JetStream(b)
			ctx := context.Background()
			if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
				b.Fatal(err)
			}
			var publish func(m eventbus.Message) error
			switch path {
			case "eventbus":
				p := eventbus.NewPublisher(js, eventbus.WithTracerProvider(noop.NewTracerProvider()), eventbus.WithConfirmTimeout(2*time.Second))
				publish = func(m eventbus.Message) error { _, err := p.Publish(ctx, m); return err }
			case "async":
				ajs, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(2*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				publish = func(m eventbus.Message) error {
					msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{m.MsgID}}}
					paf, err := ajs.PublishMsgAsync(msg, noRetry...)
					if err != nil {
						return err
					}
					select {
					case <-paf.Ok():
						return nil
					case err := <-paf.Err():
						return err
					}
				}
			case "sync":
				publish = func(m eventbus.Message) error {
					msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: nats.Header{jetstream.MsgIDHeader: []string{m.MsgID}}}
					_, err := js.PublishMsg(ctx, msg)
					return err
				}
			}
			subject := eventbus.RawEvent("bench", "ONCRMDEALUPDATE")
			var seq atomic.Int64
			b.SetParallelism(32) // × GOMAXPROCS (2 here): 64 publishers
			b.SetBytes(int64(len(data)))
			cpu := processCPU()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := publish(eventbus.Message{Subject: subject, MsgID: fmt.Sprint(path, seq.Add(1)), Data: data}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(processCPU()-cpu)/float64(b.N)/1e3, "cpu-µs/op")
		})
	}
}

// noRetry turns the library's no-responder retries off, as the ingress
// benchmark's wrapper does.
var noRetry = []jetstream.PublishOpt{jetstream.WithRetryAttempts(0)}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
