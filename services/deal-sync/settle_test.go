package dealsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestSecondChangeInTheSameSecondIsNotLost: Bitrix24's ts has whole
// seconds, so a second change of a deal within the same second produces the
// same message id and JetStream keeps one event. The fetch must still see
// the second change: deal-sync waits until the event's second has settled.
func TestSecondChangeInTheSameSecondIsNotLost(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)
	id := e.portal.CreateDeal(map[string]string{"TITLE": "First"}, false)

	// The event's ts is whole seconds (as Bitrix24 sends it): starting at
	// the top of a second leaves the update below the whole settle time
	// (2 s) to happen in, not as little as one second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	ts := time.Now().Truncate(time.Second)
	env := &eventsv1.Envelope{MessageId: "same-second", MemberId: e.member, Event: "ONCRMDEALUPDATE",
		EntityId: fmt.Sprint(id), Source: eventsv1.Source_SOURCE_PUSH, EventTs: timestamppb.New(ts)}
	data, _ := proto.Marshal(env)
	if _, err := e.js.Publish(context.Background(), eventbus.RawEvent(e.member, "ONCRMDEALUPDATE"), data, jetstream.WithMsgID("same-second")); err != nil {
		t.Fatal(err)
	}
	// Longer than the batch window: without settling, the deal would
	// already be fetched with the first title.
	time.Sleep(400 * time.Millisecond)
	e.portal.UpdateDeal(id, map[string]string{"TITLE": "Second"}, false)
	e.eventually("mirror shows the second change", func() bool {
		row, ok := e.mirror(id)
		return ok && row.title == "Second"
	})
}
