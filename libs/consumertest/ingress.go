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
	"github.com/nats-io/nats.go/jetstream"
)

// Ingress is a stand-in for the ingress service in consumer tests: an HTTP
// endpoint a fake portal pushes events to, which publishes each one as the
// ingress does (eventbus.Push and eventbus.RawEventMessage: same envelope,
// subject, headers and message id). It does not authenticate. Use it as an
// outgoing-webhook handler so that writes a consumer makes come back to it
// as events, as they would in production.
type Ingress struct {
	srv       *httptest.Server
	pub       *eventbus.Publisher
	published atomic.Int64
}

// NewIngress starts an Ingress publishing to js; it stops when t ends.
func NewIngress(t testing.TB, js jetstream.JetStream) *Ingress {
	in := &Ingress{pub: eventbus.NewPublisher(js)}
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
	d, err := b24event.DecodeDelivery(r.Header.Get("Content-Type"), body, b24event.DefaultLimits())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	env := eventbus.Push{Event: d.Event, MessageID: d.MessageID, ContentType: d.ContentType,
		Body: d.AppendRedacted(nil), ReceivedAt: time.Now()}.Envelope()
	m, err := eventbus.RawEventMessage(env, nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, err := in.pub.Publish(r.Context(), m); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	in.published.Add(1)
	w.WriteHeader(http.StatusOK)
}
