package consumertest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Ingress is a stand-in for the ingress service in consumer tests: an HTTP
// endpoint a fake portal pushes events to, which publishes each as a raw
// event Envelope with the same message id the ingress would use. It does not
// authenticate. Use it as an outgoing-webhook handler so that writes a
// consumer makes come back to it as events, as they would in production.
type Ingress struct {
	srv       *httptest.Server
	js        jetstream.JetStream
	published atomic.Int64
}

// NewIngress starts an Ingress publishing to js; it stops when t ends.
func NewIngress(t testing.TB, js jetstream.JetStream) *Ingress {
	in := &Ingress{js: js}
	in.srv = httptest.NewServer(in)
	t.Cleanup(in.srv.Close)
	return in
}

// URL is the handler URL to give the portal.
func (in *Ingress) URL() string { return in.srv.URL + "/events" }

// Published counts events published so far.
func (in *Ingress) Published() int64 { return in.published.Load() }

// ServeHTTP decodes a push and publishes it, answering 200 after the PubAck.
func (in *Ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b, err := b24event.Decode(r.Header.Get("Content-Type"), body, b24event.DefaultLimits())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ev, err := b.Event()
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	env := EnvelopeFromEvent(ev, b.Redacted(), r.Header.Get("Content-Type"))
	data, _ := proto.Marshal(env)
	if _, err := in.js.Publish(r.Context(), eventbus.RawEvent(env.MemberId, env.Event), data, jetstream.WithMsgID(env.MessageId)); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	in.published.Add(1)
	w.WriteHeader(http.StatusOK)
}

// EnvelopeFromEvent builds the Envelope the ingress publishes for ev.
func EnvelopeFromEvent(ev *b24event.Event, redacted []byte, contentType string) *eventsv1.Envelope {
	env := &eventsv1.Envelope{
		MessageId:      b24event.MessageID(ev),
		MemberId:       ev.MemberID,
		Domain:         ev.Domain,
		Event:          ev.Name,
		HandlerId:      ev.HandlerID,
		ReceivedAt:     timestamppb.New(time.Now()),
		Source:         eventsv1.Source_SOURCE_PUSH,
		ContentType:    contentType,
		Body:           redacted,
		EntityId:       ev.EntityID,
		ClientEndpoint: ev.ClientEndpoint,
	}
	if !ev.TS.IsZero() {
		env.EventTs = timestamppb.New(ev.TS)
	}
	return env
}
