package eventbus_test

import (
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

func TestRawEventMessage(t *testing.T) {
	tests := []struct {
		name string
		env  *eventsv1.Envelope
		want nats.Header
	}{
		{"push with entity", &eventsv1.Envelope{MessageId: "id1", MemberId: "m1", Event: "ONCRMDEALUPDATE", EntityId: "42", Source: eventsv1.Source_SOURCE_PUSH},
			nats.Header{"B24-Source": {"push"}, "Content-Type": {"application/protobuf"}, "B24-Member-Id": {"m1"}, "B24-Event": {"ONCRMDEALUPDATE"}, "B24-Entity-Id": {"42"}}},
		{"offline without entity", &eventsv1.Envelope{MessageId: "id2", MemberId: "m1", Event: "ONAPPTEST", Source: eventsv1.Source_SOURCE_OFFLINE},
			nats.Header{"B24-Source": {"offline"}, "Content-Type": {"application/protobuf"}, "B24-Member-Id": {"m1"}, "B24-Event": {"ONAPPTEST"}}},
		{"reconcile", &eventsv1.Envelope{MessageId: "id3", MemberId: "m-2", Event: "ONTASKUPDATE", EntityId: "7", Source: eventsv1.Source_SOURCE_RECONCILE},
			nats.Header{"B24-Source": {"reconcile"}, "Content-Type": {"application/protobuf"}, "B24-Member-Id": {"m-2"}, "B24-Event": {"ONTASKUPDATE"}, "B24-Entity-Id": {"7"}}},
		{"on-premise", &eventsv1.Envelope{MessageId: "id4", MemberId: "inst-1", Event: "ONCRMDEALADD", EntityId: "3", Source: eventsv1.Source_SOURCE_ONPREM},
			nats.Header{"B24-Source": {"onprem"}, "Content-Type": {"application/protobuf"}, "B24-Member-Id": {"inst-1"}, "B24-Event": {"ONCRMDEALADD"}, "B24-Entity-Id": {"3"}}},
		{"replay names the original", &eventsv1.Envelope{MessageId: "id1-r00", MemberId: "m1", Event: "ONCRMDEALUPDATE", EntityId: "42", Source: eventsv1.Source_SOURCE_REPLAY, ReplayOf: "id1"},
			nats.Header{"B24-Source": {"replay"}, "Content-Type": {"application/protobuf"}, "B24-Member-Id": {"m1"}, "B24-Event": {"ONCRMDEALUPDATE"}, "B24-Entity-Id": {"42"}, "B24-Original-Msg-Id": {"id1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, buf := range []*eventbus.RawEventBuffer{nil, {}} {
				m, err := eventbus.RawEventMessage(tt.env, buf)
				if err != nil {
					t.Fatal(err)
				}
				if want := eventbus.RawEvent(tt.env.MemberId, tt.env.Event); m.Subject != want || m.MsgID != tt.env.MessageId {
					t.Errorf("subject %q msg id %q, want %q %q", m.Subject, m.MsgID, want, tt.env.MessageId)
				}
				if len(m.Header) != len(tt.want) {
					t.Errorf("headers %v, want %v", m.Header, tt.want)
				}
				for k, v := range tt.want {
					if got := m.Header.Values(k); len(got) != 1 || got[0] != v[0] {
						t.Errorf("header %s = %q, want %q", k, got, v)
					}
				}
				got := &eventsv1.Envelope{}
				if err := proto.Unmarshal(m.Data, got); err != nil || !proto.Equal(got, tt.env) {
					t.Errorf("payload %v (%v), want %v", got, err, tt.env)
				}
			}
		})
	}
}

func TestRawEventMessageRefuses(t *testing.T) {
	ok := func() *eventsv1.Envelope {
		return &eventsv1.Envelope{MessageId: "id", MemberId: "m1", Event: "ONCRMDEALADD", Source: eventsv1.Source_SOURCE_PUSH}
	}
	tests := []struct {
		name   string
		mutate func(*eventsv1.Envelope)
	}{
		{"no message id", func(e *eventsv1.Envelope) { e.MessageId = "" }},
		{"no member id", func(e *eventsv1.Envelope) { e.MemberId = "" }},
		{"member id with a dot", func(e *eventsv1.Envelope) { e.MemberId = "a.b" }},
		{"event with a wildcard", func(e *eventsv1.Envelope) { e.Event = "ONCRM*" }},
		{"unspecified source", func(e *eventsv1.Envelope) { e.Source = eventsv1.Source_SOURCE_UNSPECIFIED }},
		{"unknown source", func(e *eventsv1.Envelope) { e.Source = 99 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := ok()
			tt.mutate(env)
			if _, err := eventbus.RawEventMessage(env, nil); !errors.Is(err, eventbus.ErrInvalidEnvelope) {
				t.Errorf("err = %v, want ErrInvalidEnvelope", err)
			}
		})
	}
}

// TestRawEventBufferReuse checks that a message built in a reused buffer
// is complete and that an Add to one of its headers cannot overwrite the
// next header's value (the values share one array).
func TestRawEventBufferReuse(t *testing.T) {
	var buf eventbus.RawEventBuffer
	first, err := eventbus.RawEventMessage(&eventsv1.Envelope{MessageId: "a", MemberId: "m1", Event: "ONA", Source: eventsv1.Source_SOURCE_PUSH}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	first.Header.Add(eventbus.HeaderMemberID, "extra")
	if got := first.Header.Get(eventbus.HeaderEvent); got != "ONA" {
		t.Fatalf("event header overwritten by an Add: %q", got)
	}
	buf.Reset()
	second, err := eventbus.RawEventMessage(&eventsv1.Envelope{MessageId: "b", MemberId: "m2", Event: "ONB", EntityId: "9", Source: eventsv1.Source_SOURCE_PUSH}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if second.Header.Get(eventbus.HeaderMemberID) != "m2" || second.Header.Get(eventbus.HeaderEntityID) != "9" || second.MsgID != "b" {
		t.Errorf("second message %v", second)
	}
	got := &eventsv1.Envelope{}
	if err := proto.Unmarshal(second.Data, got); err != nil || got.MessageId != "b" {
		t.Errorf("second payload %v %v", got, err)
	}
}

func TestPushEnvelope(t *testing.T) {
	body := []byte("event=ONCRMDEALUPDATE&data[FIELDS][ID]=42&ts=1700000000&auth[member_id]=m1&auth[application_token]=secret&event_handler_id=5")
	d, err := b24event.DecodeDelivery(b24event.ContentTypeForm, body, b24event.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := eventbus.Push{Event: d.Event, MessageID: d.MessageID, ContentType: d.ContentType, Body: []byte("redacted"),
		Domain: "fallback.bitrix24.ru", Route: "r1", ReceivedAt: at}.Envelope()
	want := &eventsv1.Envelope{MessageId: d.MessageID, MemberId: "m1", Domain: "fallback.bitrix24.ru", Event: "ONCRMDEALUPDATE",
		HandlerId: "5", Source: eventsv1.Source_SOURCE_PUSH, ContentType: d.ContentType, Body: []byte("redacted"), EntityId: "42", Route: "r1"}
	if env.GetReceivedAt().AsTime() != at || env.GetEventTs().AsTime().Unix() != 1700000000 {
		t.Errorf("times %v %v", env.GetReceivedAt(), env.GetEventTs())
	}
	env.ReceivedAt, env.EventTs = nil, nil
	if !proto.Equal(env, want) {
		t.Errorf("envelope\n%v\nwant\n%v", env, want)
	}
	if _, err := eventbus.RawEventMessage(env, nil); err != nil {
		t.Errorf("a push envelope is not publishable: %v", err)
	}
}

func TestSourceName(t *testing.T) {
	for src, want := range map[eventsv1.Source]string{
		eventsv1.Source_SOURCE_PUSH: "push", eventsv1.Source_SOURCE_OFFLINE: "offline", eventsv1.Source_SOURCE_RECONCILE: "reconcile",
		eventsv1.Source_SOURCE_REPLAY: "replay", eventsv1.Source_SOURCE_ONPREM: "onprem", eventsv1.Source_SOURCE_UNSPECIFIED: "", 99: "",
	} {
		if got := eventbus.SourceName(src); got != want {
			t.Errorf("SourceName(%v) = %q, want %q", src, got, want)
		}
	}
}
