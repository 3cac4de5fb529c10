package replay_test

import (
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
)

func TestNewIDIsFreshAndTraceable(t *testing.T) {
	a, b := replay.NewID("evt-1"), replay.NewID("evt-1")
	if a == b || !strings.HasPrefix(a, "evt-1-r") || len(a) != len("evt-1-r")+8 {
		t.Fatalf("ids %q %q", a, b)
	}
}

func TestEnvelopeIsAReplay(t *testing.T) {
	ts := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	now := ts.Add(time.Hour)
	e := ledger.Event{ID: "evt-1-r00000000", Portal: "m", Domain: "d", EventType: "ONCRMDEALUPDATE", EntityID: "42",
		Source: "replay", ReplayOf: "evt-1", ReceivedAt: ts, EventTS: ts, Payload: []byte("x=1"), ContentType: "application/json"}
	env := replay.Envelope(e, "evt-1-rabcdef01", "evt-1", now)
	if env.GetSource() != eventsv1.Source_SOURCE_REPLAY || env.GetReplayOf() != "evt-1" || env.GetMessageId() != "evt-1-rabcdef01" ||
		!env.GetReceivedAt().AsTime().Equal(now) || !env.GetEventTs().AsTime().Equal(ts) || string(env.GetBody()) != "x=1" ||
		env.GetEntityId() != "42" {
		t.Fatalf("envelope = %v", env)
	}
}
