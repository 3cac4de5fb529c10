package rawevent

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/proto"
)

func TestBuild(t *testing.T) {
	var data map[string]any
	_ = json.Unmarshal([]byte(`{"FIELDS_BEFORE":{"ID":7},"FIELDS_AFTER":{"ID":"7"},"IS_ACCESSIBLE_BEFORE":"undefined"}`), &data)
	ts := time.Unix(1727018926, 0)
	m, err := Build(Event{MessageID: "id1", MemberID: "m1", Domain: "acme.bitrix24.com", ClientEndpoint: "https://acme.bitrix24.com/rest/",
		Name: "ONTASKUPDATE", Data: data, TS: ts, Source: eventsv1.Source_SOURCE_OFFLINE}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != eventbus.RawEvent("m1", "ONTASKUPDATE") || m.MsgID != "id1" || m.Header.Get(eventbus.HeaderSource) != eventbus.SourceOffline {
		t.Fatalf("message = %+v", m)
	}
	var env eventsv1.Envelope
	if err := proto.Unmarshal(m.Data, &env); err != nil {
		t.Fatal(err)
	}
	want := "event=ONTASKUPDATE&data%5BFIELDS_AFTER%5D%5BID%5D=7&data%5BFIELDS_BEFORE%5D%5BID%5D=7&data%5BIS_ACCESSIBLE_BEFORE%5D=undefined&ts=1727018926&auth%5Bdomain%5D=acme.bitrix24.com&auth%5Bclient_endpoint%5D=https%3A%2F%2Facme.bitrix24.com%2Frest%2F&auth%5Bmember_id%5D=m1"
	if string(env.GetBody()) != want {
		t.Errorf("body\n got %s\nwant %s", env.GetBody(), want)
	}
	if env.GetEntityId() != "7" || env.GetSource() != eventsv1.Source_SOURCE_OFFLINE || !env.GetEventTs().AsTime().Equal(ts) {
		t.Errorf("envelope = %v", &env)
	}
	if strings.Contains(string(env.GetBody()), "token") {
		t.Error("body carries a token")
	}
}

func TestBuildRefusesWhatTheIngressRefuses(t *testing.T) {
	for name, ev := range map[string]Event{
		"no id":      {MemberID: "m1", Name: "ONX", Source: eventsv1.Source_SOURCE_RECONCILE},
		"bad member": {MessageID: "x", MemberID: "m.1", Name: "ONX", Source: eventsv1.Source_SOURCE_RECONCILE},
		"bad event":  {MessageID: "x", MemberID: "m1", Name: "ON X", Source: eventsv1.Source_SOURCE_RECONCILE},
		"no source":  {MessageID: "x", MemberID: "m1", Name: "ONX"},
	} {
		if _, err := Build(ev, time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
