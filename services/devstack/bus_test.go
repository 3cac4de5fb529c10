package main

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/svcdecl"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/catalog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// intruderPrefix names the connections a test makes to be refused: the
// stack's check for refusals (startStack) leaves their refusals out.
const intruderPrefix = "intruder-"

// TestOnlyTheCommandPublisherWritesDeals: in the running stack, a deal
// command sent by any identity but its declared publisher is refused by
// the server, so it is never stored and deal-sync never writes it to the
// portal; the publisher's command is stored, handled and written. The
// consumer acts only on what the bus vouches for.
func TestOnlyTheCommandPublisherWritesDeals(t *testing.T) {
	parallelShort(t)
	s := startStack(t, stackOptions{})
	const dealID = 1
	publisher := svcdecl.CommandPublisher("deal-sync-commands")
	subject := eventbus.Command("deal", s.demo.MemberID, "update")
	command := func(id, title string) []byte {
		b, err := proto.Marshal(&eventsv1.Command{Id: id, MemberId: s.demo.MemberID, EntityType: "deal",
			EntityId: strconv.Itoa(dealID), Action: "update", Fields: map[string]string{"TITLE": strconv.Quote(title)},
			Origin: "devstack-test", At: timestamppb.Now()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	forgers := 0
	for _, id := range catalog.Identities() {
		if id.User == publisher || id.User == svcdecl.AdminUser {
			continue
		}
		forgers++
		nc := s.connectAs(id.User, nats.Name(intruderPrefix+id.User))
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err = js.Publish(ctx, subject, command("forged-"+id.User, "forged by "+id.User))
		cancel()
		if err == nil {
			t.Errorf("%s published a deal command", id.User)
		}
	}

	nc := s.connectAs(publisher)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := js.Publish(ctx, subject, command("genuine-1", "from the publisher")); err != nil {
		t.Fatalf("the command publisher: %v", err)
	}
	s.eventually("the publisher's command written to the portal", 60*time.Second, func() bool {
		d, ok := s.fake.Deal(dealID)
		return ok && d["TITLE"] == "from the publisher"
	})
	str, err := s.js.Stream(ctx, eventbus.StreamCommands)
	if err != nil {
		t.Fatal(err)
	}
	info, err := str.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("%s holds %d commands after %d forgeries and one genuine command, want 1", eventbus.StreamCommands, info.State.Msgs, forgers)
	}
	if n := s.refusals(intruderPrefix); n < forgers {
		t.Errorf("the server logged %d refusals of the %d forgers", n, forgers)
	}
	s.checkRunners()
}
