package dealsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// publishOnprem publishes a deal event as the ingress's on-premise route
// does: the PHP event name upper-cased, the forwarder's JSON as body,
// SOURCE_ONPREM. params holds only what the PHP event carried — for an
// update, the changed fields.
func (e *env) publishOnprem(id int64, event, msgID, params string) {
	e.t.Helper()
	body := fmt.Sprintf(`{"id":"0b6e3c1e-8a4f-4c8e-9d1a-%012d","module":"crm","event":"%s","time":"%s","user_id":1,"entity_id":"%d","params":%s}`,
		id, event, time.Now().UTC().Format(time.RFC3339), id, params)
	env := &eventsv1.Envelope{MessageId: msgID, MemberId: e.member, Event: eventNameOnprem(event), EntityId: fmt.Sprint(id),
		Source: eventsv1.Source_SOURCE_ONPREM, ContentType: "application/json", Body: []byte(body),
		EventTs: timestamppb.Now(), ReceivedAt: timestamppb.Now()}
	data, _ := proto.Marshal(env)
	hdr := nats.Header{}
	hdr.Set(eventbus.HeaderSource, eventbus.SourceOnPrem)
	msg := &nats.Msg{Subject: eventbus.RawEvent(e.member, env.Event), Data: data, Header: hdr}
	if _, err := e.js.PublishMsg(context.Background(), msg, jetstream.WithMsgID(msgID)); err != nil {
		e.t.Fatal(err)
	}
}

func eventNameOnprem(php string) string {
	return map[string]string{"OnAfterCrmDealAdd": "ONAFTERCRMDEALADD", "OnAfterCrmDealUpdate": "ONAFTERCRMDEALUPDATE",
		"OnAfterCrmDealDelete": "ONAFTERCRMDEALDELETE"}[php]
}

// TestMirrorsOnPremiseDealEvents: an installation's OnAfterCrmDeal… events
// (delivered by the b24hub.forwarder module) mirror deals like REST events.
// The update event carries only the changed stage, yet the mirror and the
// diff hold the whole deal: deal-sync fetched it through the installation's
// REST webhook instead of trusting the partial field array.
func TestMirrorsOnPremiseDealEvents(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)

	id := e.portal.CreateDeal(map[string]string{"TITLE": "Boiler", "OPPORTUNITY": "100.00"}, false)
	e.publishOnprem(id, "OnAfterCrmDealAdd", "op-add", fmt.Sprintf(`[{"ID":%d,"TITLE":"Boiler"}]`, id))
	e.eventually("created change", func() bool { return len(e.changesFor(id)) == 1 })
	if c := e.changesFor(id)[0]; c.Kind != eventsv1.ChangeKind_CHANGE_KIND_CREATED {
		t.Fatalf("first change %v", c.Kind)
	}

	e.portal.UpdateDeal(id, map[string]string{"STAGE_ID": "WON"}, false)
	e.publishOnprem(id, "OnAfterCrmDealUpdate", "op-update", fmt.Sprintf(`[{"ID":%d,"STAGE_ID":"WON"}]`, id))
	e.eventually("updated change", func() bool { return len(e.changesFor(id)) == 2 })
	got := map[string]string{}
	for _, fc := range e.changesFor(id)[1].Changes {
		got[fc.Field] = fc.OldJson + "->" + fc.NewJson
	}
	if got["STAGE_ID"] != `"NEW"->"WON"` {
		t.Errorf("diff %v, want STAGE_ID NEW→WON", got)
	}
	if row, ok := e.mirror(id); !ok || row.title != "Boiler" || row.fields["OPPORTUNITY"] == nil {
		t.Errorf("mirror %+v %v: want the whole fetched deal, not the event's partial fields", row, ok)
	}

	e.portal.DeleteDeal(id, false)
	e.publishOnprem(id, "OnAfterCrmDealDelete", "op-delete", fmt.Sprint("[", id, "]"))
	e.eventually("deleted change", func() bool {
		cs := e.changesFor(id)
		return len(cs) == 3 && cs[2].Kind == eventsv1.ChangeKind_CHANGE_KIND_DELETED
	})
	if row, _ := e.mirror(id); !row.deleted {
		t.Error("mirror not marked deleted")
	}
}
