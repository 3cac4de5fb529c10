package consumertest_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/proto"
)

// TestIngressPublishesWhatTheIngressDoes checks that the stand-in stores
// the library's raw-event message for a push: the subject, the payload and
// every header RawEventMessage sets, with the secrets redacted.
func TestIngressPublishesWhatTheIngressDoes(t *testing.T) {
	_, js := natstest.Start(t).JetStream(t)
	ctx := context.Background()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	in := consumertest.NewIngress(t, js)
	body := "event=ONCRMDEALUPDATE&data[FIELDS][ID]=42&ts=1700000000&auth[domain]=x.bitrix24.ru&auth[member_id]=m1&auth[application_token]=secret-token"
	resp, err := http.Post(in.URL(), "application/x-www-form-urlencoded", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || in.Published() != 1 {
		t.Fatalf("status %d, published %d", resp.StatusCode, in.Published())
	}
	s, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx, eventbus.RawEvent("m1", "ONCRMDEALUPDATE"))
	if err != nil {
		t.Fatal(err)
	}
	env := &eventsv1.Envelope{}
	if err := proto.Unmarshal(raw.Data, env); err != nil {
		t.Fatal(err)
	}
	if env.GetSource() != eventsv1.Source_SOURCE_PUSH || env.GetEntityId() != "42" || env.GetDomain() != "x.bitrix24.ru" {
		t.Errorf("envelope %v", env)
	}
	if bytes.Contains(raw.Data, []byte("secret-token")) {
		t.Error("the application token reached the stream")
	}
	want, err := eventbus.RawEventMessage(env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get(eventbus.HeaderMsgID) != want.MsgID {
		t.Errorf("message id %q, want %q", raw.Header.Get(eventbus.HeaderMsgID), want.MsgID)
	}
	for k, v := range want.Header {
		if got := raw.Header.Values(k); !slices.Equal(got, v) {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

// TestEnvelopeFixtureIsARawEventMessage checks that fixtures carry the
// ingress's headers and default to a push.
func TestEnvelopeFixtureIsARawEventMessage(t *testing.T) {
	env := &eventsv1.Envelope{MessageId: "f1", MemberId: "m1", Event: "ONTASKADD", EntityId: "5"}
	f := consumertest.EnvelopeFixture(env)
	pushed := proto.CloneOf(env)
	pushed.Source = eventsv1.Source_SOURCE_PUSH
	want, err := eventbus.RawEventMessage(pushed, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Subject != want.Subject || f.MsgID != want.MsgID || !bytes.Equal(f.Data, want.Data) || len(f.Header) != len(want.Header) {
		t.Errorf("fixture %+v, want %+v", f, want)
	}
	if f.Header.Get(eventbus.HeaderSource) != eventbus.SourcePush || env.Source != eventsv1.Source_SOURCE_UNSPECIFIED {
		t.Errorf("source header %q; caller's envelope changed to %v", f.Header.Get(eventbus.HeaderSource), env.Source)
	}
}
