package probe

import (
	"context"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

type records struct{ sent map[string]time.Time }

func (r *records) ProbeSent(_ context.Context, id, _ string, at time.Time) error {
	r.sent[id] = at
	return nil
}
func (r *records) ProbeReceived(_ context.Context, id string, _ time.Time) (time.Time, bool, error) {
	at, ok := r.sent[id]
	delete(r.sent, id)
	return at, ok, nil
}

type tester struct{ query map[string]any }

func (t *tester) TestEvent(_ context.Context, q map[string]any) error { t.query = q; return nil }

func TestRoundTrip(t *testing.T) {
	rec := &records{sent: map[string]time.Time{}}
	p := New(rec)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	tt := &tester{}
	id, err := p.Send(context.Background(), "m1", tt)
	if err != nil || tt.query[QueryKey] != id {
		t.Fatalf("send: %v %v", err, tt.query)
	}
	now = now.Add(1500 * time.Millisecond)
	env := &eventsv1.Envelope{Event: "ONAPPTEST", ContentType: "application/x-www-form-urlencoded",
		Body: []byte("event=ONAPPTEST&data%5BQUERY%5D%5Bb24hub_probe%5D=" + id + "&auth%5Bmember_id%5D=m1")}
	rtt, ok, err := p.Received(context.Background(), env)
	if err != nil || !ok || rtt != 1500*time.Millisecond {
		t.Fatalf("received = %v %v %v", rtt, ok, err)
	}
	if _, ok, _ := p.Received(context.Background(), env); ok {
		t.Fatal("probe counted twice")
	}
	other := &eventsv1.Envelope{Event: "ONAPPTEST", ContentType: "application/x-www-form-urlencoded", Body: []byte("event=ONAPPTEST&auth%5Bmember_id%5D=m1")}
	if _, ok, _ := p.Received(context.Background(), other); ok {
		t.Fatal("foreign test event matched")
	}
}
