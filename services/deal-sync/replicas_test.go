package dealsync_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// TestReplicasKeepEachDealInOrder runs three deal-sync replicas on one
// durable consumer and one database while every deal changes several
// times, each change pushed as an event: the events of one deal land on
// different replicas. No deal's published changes may go backwards or
// fork (two changes from the same state: one applied twice, or an older
// state applied after a newer one), no event may be settled twice, and
// every mirror row ends in the portal's final state.
func TestReplicasKeepEachDealInOrder(t *testing.T) {
	e := newEnv(t, fakeportal.Config{Rate: 1000, Burst: 1000})
	const deals, rounds = 20, 4
	ids := make([]int64, deals)
	for i := range ids {
		ids[i] = e.portal.CreateDeal(map[string]string{"TITLE": fmt.Sprint("Deal ", i), "OPPORTUNITY": "0"}, false)
	}
	for range 3 {
		e.start(fastConfig(), e.client)
	}
	for r := 1; r <= rounds; r++ {
		for _, id := range ids {
			e.portal.UpdateDeal(id, map[string]string{"OPPORTUNITY": strconv.Itoa(r*1000 + int(id))}, true)
		}
	}
	e.idle()

	for _, id := range ids {
		from := map[string]bool{}
		for _, c := range e.changesFor(id) {
			for _, fc := range c.Changes {
				if fc.Field != "OPPORTUNITY" {
					continue
				}
				o, _ := strconv.Unquote(fc.OldJson)
				n, _ := strconv.Unquote(fc.NewJson)
				ov, _ := strconv.Atoi(o)
				nv, _ := strconv.Atoi(n)
				if nv < ov {
					t.Errorf("deal %d went back from %s to %s", id, o, n)
				}
				if from[o] {
					t.Errorf("deal %d changed twice from OPPORTUNITY %s", id, o)
				}
				from[o] = true
			}
		}
		row, ok := e.mirror(id)
		if want := strconv.Itoa(rounds*1000 + int(id)); !ok || fmt.Sprint(row.fields["OPPORTUNITY"]) != want {
			t.Errorf("deal %d mirrored OPPORTUNITY %v, want %s", id, row.fields["OPPORTUNITY"], want)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	final := map[string]int{}
	for _, o := range e.outcomes {
		if o.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Status == eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED {
			if final[o.EventId]++; final[o.EventId] == 2 {
				t.Errorf("event %s settled twice", o.EventId)
			}
		}
	}
	if len(final) == 0 {
		t.Fatal("no outcome received")
	}
}
