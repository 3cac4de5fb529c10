// Package probe runs the synthetic end-to-end probe: event.test makes the
// portal push ONAPPTEST (with the call's parameters under data[QUERY],
// §1.5) through the real delivery path to the ingress. The probe records
// when it asked; when the ONAPPTEST comes back through the raw stream the
// round trip is measured. The monitor alerts when a probe's ONAPPTEST does
// not arrive within its bound.
package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

// QueryKey is the data[QUERY] key carrying the probe id.
const QueryKey = "b24hub_probe"

// Tester fires ONAPPTEST; *bitrix.Client implements it.
type Tester interface {
	TestEvent(ctx context.Context, query map[string]any) error
}

var _ Tester = (*bitrix.Client)(nil)

// Records stores probes; *store.Store implements it.
type Records interface {
	ProbeSent(ctx context.Context, probeID, memberID string, at time.Time) error
	ProbeReceived(ctx context.Context, probeID string, at time.Time) (time.Time, bool, error)
}

// Prober sends probes and matches their answers.
type Prober struct {
	rec Records
	now func() time.Time
}

// New returns a Prober.
func New(rec Records) *Prober { return &Prober{rec: rec, now: time.Now} }

// Send records a probe for memberID and calls event.test. It returns the
// probe id.
func (p *Prober) Send(ctx context.Context, memberID string, c Tester) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := hex.EncodeToString(b[:])
	now := p.now()
	if err := p.rec.ProbeSent(ctx, id, memberID, now); err != nil {
		return "", err
	}
	err := c.TestEvent(ctx, map[string]any{QueryKey: id, "sent_at": strconv.FormatInt(now.Unix(), 10)})
	if err != nil {
		return "", fmt.Errorf("probe: event.test: %w", err)
	}
	return id, nil
}

// Received matches an ONAPPTEST envelope with its probe and returns the
// round-trip time; ok is false for a test event that is not one of ours or
// was already counted.
func (p *Prober) Received(ctx context.Context, env *eventsv1.Envelope) (time.Duration, bool, error) {
	id := probeID(env)
	if id == "" {
		return 0, false, nil
	}
	at := p.now()
	sent, ok, err := p.rec.ProbeReceived(ctx, id, at)
	if err != nil || !ok {
		return 0, false, err
	}
	return at.Sub(sent), true, nil
}

// probeID reads data[QUERY][b24hub_probe] from a form or JSON body.
func probeID(env *eventsv1.Envelope) string {
	body, err := b24event.Decode(env.GetContentType(), env.GetBody(), b24event.DefaultLimits())
	if err != nil {
		// Older envelopes without a content type: try the form.
		v, perr := url.ParseQuery(string(env.GetBody()))
		if perr != nil {
			return ""
		}
		return v.Get("data[QUERY][" + QueryKey + "]")
	}
	data, _ := body.Tree["data"].(map[string]any)
	q, _ := data["QUERY"].(map[string]any)
	s, _ := q[QueryKey].(string)
	return s
}
