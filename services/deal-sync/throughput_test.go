package dealsync_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// BenchmarkThroughput is deal-sync's CPU cost per event: b.N
// ONCRMDEALUPDATE events, each after a real change of one of 500 deals on
// a portal without rate limit, published straight to the stream, until
// every outcome is in. It runs the service as shipped (runtime, handler,
// mirror, outbox); run it with -cpuprofile and focus on deal-sync's
// packages to see where the time goes (the profile also holds the
// embedded broker and the fake portal):
//
//	cd services/deal-sync && go test -run '^$' -bench Throughput -benchtime 20000x -cpuprofile /tmp/ds.prof .
//	go tool pprof -top -focus 'dealevents|consumer|mirror|store|bitrix' /tmp/ds.prof
func BenchmarkThroughput(b *testing.B) {
	e := newEnv(b, fakeportal.Config{Rate: 1e6, Burst: 1e6})
	const deals = 500
	for i := range deals {
		e.portal.CreateDeal(map[string]string{"TITLE": fmt.Sprint("Deal ", i), "OPPORTUNITY": "1"}, false)
	}
	e.start(fastConfig(), e.client)
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		id := int64(i%deals + 1)
		e.portal.UpdateDeal(id, map[string]string{"OPPORTUNITY": strconv.Itoa(100 + i)}, false)
		e.publishRaw(id, "ONCRMDEALUPDATE", fmt.Sprintf("bench-%d", i))
	}
	e.eventually("every event settled", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.outcomes) >= b.N
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
	_ = eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE
}
