package main

import (
	"context"
	"fmt"
	"github.com/b24hub/b24hub/libs/natstest"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/pgtest"
)

// TestLongOutageDeadLettersNothing runs deal-sync with the default backoff
// schedule compressed to milliseconds (1, 5, 15 ms; 4 deliveries: 21 ms from
// the first try to the dead letter) through an outage of 5 s (60 s under
// chaos), hundreds of times longer than that schedule: PostgreSQL is cut
// (a proxy between the stack and the server) and the portal answers every
// REST call with a 503 error page, while deal updates keep arriving. Both
// are dependencies, not the events' fault: deal-sync pauses and the ledger
// ingest waits, nothing is dead-lettered, and once both answer again every
// accepted event is done in the ledger and the mirror equals the portal.
// Before consumer.Unavailable, every event caught by the outage was
// dead-lettered after 21 ms of retries.
func TestLongOutageDeadLettersNothing(t *testing.T) {
	parallelShort(t)
	direct := pgtest.NewDatabase(t)
	proxy := natstest.NewProxy(t, hostPort(t, direct))
	s := startStack(t, stackOptions{databaseURL: viaProxy(t, direct, proxy.Addr()), assertDB: direct,
		env: stackEnv("B24HUB_DEALSYNC_BACKOFF", "1ms,5ms,15ms", "B24HUB_DEALSYNC_MAX_DELIVER", "4",
			"B24HUB_DEALSYNC_PROBE_INTERVAL", "5ms", "B24HUB_DEALSYNC_PROBE_MAX_INTERVAL", "200ms")})
	outage := pick(5*time.Second, 60*time.Second)
	n := pick(40, 200)

	var ids []string
	send := func(i int) {
		id := int64(1 + i%demoDeals)
		s.fake.UpdateDeal(id, map[string]string{"OPPORTUNITY": fmt.Sprint(200000 + i)}, false)
		r := s.post(s.dealUpdate(int(id)))
		if r.status != http.StatusOK {
			t.Fatalf("push %d: %d %v", i, r.status, r.err)
		}
		ids = append(ids, r.id)
	}
	proxy.Cut()
	s.fake.SetFaults(fakeportal.Faults{HTMLRate: 1, HTMLStatus: http.StatusServiceUnavailable})
	t.Logf("PostgreSQL cut and the portal answering 503 for %s (the retry schedule is 21 ms)", outage)
	began := time.Now()
	for i := range n {
		send(i)
		time.Sleep(outage / time.Duration(n))
	}
	time.Sleep(time.Until(began.Add(outage)))
	proxy.Restore()
	s.fake.SetFaults(fakeportal.Faults{})
	restored := time.Now()

	s.waitLedger(ids, pick(2*time.Minute, 4*time.Minute))
	s.eventually("stack idle", 3*time.Minute, func() bool { return s.pending() == 0 })
	t.Logf("%d events done %s after both came back", len(ids), time.Since(restored).Round(100*time.Millisecond))
	if dl := s.deadLetters(); len(dl) > 0 {
		t.Errorf("dead letters after a %s outage: %v", outage, dl)
	}
	var behind int
	for i := range min(n, demoDeals) {
		id := int64(1 + i)
		want, _ := s.fake.Deal(id)
		var got string
		if err := s.db.QueryRow(context.Background(), `SELECT coalesce(opportunity, '') FROM deal_sync.deals WHERE deal_id = $1`, id).Scan(&got); err != nil || !sameAmount(got, want["OPPORTUNITY"]) {
			behind++
			t.Logf("deal %d: mirror %q (%v), portal %q", id, got, err, want["OPPORTUNITY"])
		}
	}
	if behind > 0 {
		t.Errorf("%d deals not mirrored in their last state", behind)
	}
	logs := s.logs.String()
	for _, want := range []string{"dependency unavailable; consumer paused", "dependency answers; consumer resumed"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log has no %q", want)
		}
	}
	s.checkRunners()
}
