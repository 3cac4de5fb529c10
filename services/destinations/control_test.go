package destinations_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// request asks the running service over NATS, as b24ctl and the monitor do.
func request[T any](t *testing.T, nc *nats.Conn, subject string, req any) T {
	t.Helper()
	data, _ := json.Marshal(req)
	msg, err := nc.Request(subject, data, 30*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subject, err)
	}
	var rep T
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// The destinations are listed over NATS with what they receive and their
// state; a replay to one destination reaches that destination only, with
// the webhook-id of the first delivery (receivers de-duplicate it) and the
// event's trace continued in traceparent.
func TestListAndReplayToOneDestination(t *testing.T) {
	e := newEnv(t)
	a, b := newReceiver(t, nil), newReceiver(t, nil)
	rcs := map[string]*receiver{"crm": a, "erp": b}
	e.declare(t, rcs, "5s")
	in := e.run(t, rcs, nil)
	nc := e.srv.Connect(t)

	list := request[eventbus.DestinationsReply](t, nc, eventbus.ControlDestinationsList, eventbus.DestinationsRequest{})
	if len(list.Destinations) != 2 || list.Destinations[0].Name != "crm" || list.Destinations[0].Consumer != "dest-crm" ||
		!strings.HasSuffix(list.Destinations[0].URL, "/hook") || fmt.Sprint(list.Destinations[0].Subjects) != "[b24.changes.deal.*.*]" ||
		list.Destinations[0].State != "delivering" || list.Destinations[0].Paused {
		t.Errorf("list: %+v", list)
	}
	one := request[eventbus.DestinationsReply](t, nc, eventbus.ControlDestinationsList, eventbus.DestinationsRequest{Name: "nope"})
	if one.Error == "" {
		t.Errorf("unknown destination listed: %+v", one)
	}

	// A change with a trace, as deal-sync publishes it.
	const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	data, _ := proto.Marshal(&eventsv1.DomainChange{Id: "d7-0", MemberId: "p1", EntityType: "deal", EntityId: "d7"})
	msg := &nats.Msg{Subject: eventbus.Change("deal", "p1", "d7"), Data: data, Header: nats.Header{}}
	msg.Header.Set(eventbus.HeaderMsgID, "d7-0")
	msg.Header.Set("traceparent", traceparent)
	ack, err := e.js.PublishMsg(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	a.wait(t, 1)
	b.wait(t, 1)
	idA := webhookIDOf(t, "crm", "d7-0")

	// By message id among the entity's subject (a change), and by stream
	// sequence (how the monitor finds a raw event).
	for _, req := range []eventbus.DestinationReplayRequest{
		{Destination: "dest-crm", MessageID: "d7-0", Subject: eventbus.Change("deal", "p1", "d7"), ReplayID: "d7-0-r1"},
		{Destination: "crm", MessageID: "d7-0", StreamSeq: ack.Sequence},
	} {
		rep := request[eventbus.DestinationReplayReply](t, nc, eventbus.ControlDestinationsReplay, req)
		if !rep.Delivered || rep.WebhookID != idA || rep.Status != 200 || rep.Error != "" {
			t.Errorf("replay %+v: %+v", req, rep)
		}
	}
	a.mu.Lock()
	if a.byID[idA] != 3 || a.traces[idA] == "" || !strings.HasPrefix(a.traces[idA], "00-4bf92f3577b34da6a3ce929d0e0e4736-") {
		t.Errorf("crm: %d requests with its webhook-id, traceparent %q; want 3 and the event's trace", a.byID[idA], a.traces[idA])
	}
	a.mu.Unlock()
	b.mu.Lock()
	if b.requests != 1 {
		t.Errorf("erp: %d requests, want 1 (a replay to crm reaches crm only)", b.requests)
	}
	b.mu.Unlock()

	// The replay's attempt is in the ledger's stream under the replay id.
	oc, err := e.js.OrderedConsumer(context.Background(), eventbus.StreamOutcomes, jetstreamOrdered(eventbus.Outcome("dest-crm", "p1")))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for range 3 {
		m, err := oc.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var o eventsv1.Outcome
		if err := proto.Unmarshal(m.Data(), &o); err != nil {
			t.Fatal(err)
		}
		if o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE || o.Duration.AsDuration() <= 0 {
			t.Errorf("outcome %v", &o)
		}
		seen[o.EventId]++
	}
	if seen["d7-0"] != 2 || seen["d7-0-r1"] != 1 {
		t.Errorf("outcomes by event id %v, want the delivery and the plain replay under d7-0, the tracked replay under d7-0-r1", seen)
	}

	// A message the destination does not receive is refused.
	rep := request[eventbus.DestinationReplayReply](t, nc, eventbus.ControlDestinationsReplay,
		eventbus.DestinationReplayRequest{Destination: "crm", MessageID: "x", Subject: eventbus.Change("task", "p1", "1")})
	if rep.Error == "" || rep.Delivered {
		t.Errorf("replay of an unknown message: %+v", rep)
	}
	_ = in
}

func jetstreamOrdered(subject string) jetstream.OrderedConsumerConfig {
	return jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}}
}
