package eventbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestServerWatchLeavesIsolatedNode: a three-node cluster, one node cut
// off from the other two. A client of the whole cluster connected to that
// node moves to another one and reaches JetStream again while the
// partition lasts. Without the watch it would stay until the partition
// heals (NATS clients do not leave a server that answers).
func TestServerWatchLeavesIsolatedNode(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	nc := c.Connect(t)
	lone := c.Node(nc.ConnectedServerName())
	if lone == nil {
		t.Fatalf("connected to %q, not a node of the cluster", nc.ConnectedServerName())
	}
	w := ServerWatch{Interval: 200 * time.Millisecond, Patience: time.Second}
	defer w.Start(nc)()

	c.Isolate(lone.Name)
	defer c.Heal(lone.Name)
	testwait.For(t, "the client to leave the isolated node "+lone.Name, func() bool {
		return nc.ConnectedServerName() != lone.Name && nc.Status() == nats.CONNECTED
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, "JetStream through the client's new node", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}

func TestCutOffObserve(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fail := errors.New("timeout")
	unavail := errJetStreamUnavailable
	type probe struct {
		server string
		err    error
		at     time.Duration // after t0
		leave  bool
	}
	tests := []struct {
		name   string
		probes []probe
	}{
		{"every probe failed for the patience", []probe{
			{"n1", fail, 0, false}, {"n1", fail, 4 * time.Second, false}, {"n1", fail, 10 * time.Second, true}}},
		{"one answer starts the run again", []probe{
			{"n1", fail, 0, false}, {"n1", nil, 5 * time.Second, false}, {"n1", fail, 6 * time.Second, false},
			{"n1", fail, 11 * time.Second, false}, {"n1", fail, 16 * time.Second, true}}},
		{"another server starts the run again", []probe{
			{"n1", fail, 0, false}, {"n2", fail, 5 * time.Second, false}, {"n2", fail, 11 * time.Second, false},
			{"n2", fail, 15 * time.Second, true}}},
		{"10008 for half the patience", []probe{
			{"n1", fail, 0, false}, {"n1", unavail, 2 * time.Second, false}, {"n1", unavail, 6 * time.Second, false},
			{"n1", unavail, 7 * time.Second, true}}},
		{"a timeout starts the run of 10008 again", []probe{
			{"n1", unavail, 0, false}, {"n1", fail, 2 * time.Second, false}, {"n1", unavail, 3 * time.Second, false},
			{"n1", unavail, 7 * time.Second, false}, {"n1", unavail, 8 * time.Second, true}}},
		{"one failed probe is never enough", []probe{{"n1", fail, 0, false}}},
		{"one 10008 is never enough", []probe{{"n1", unavail, 0, false}}},
		{"answers never leave", []probe{{"n1", nil, 0, false}, {"n1", nil, time.Minute, false}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c cutOff
			for i, p := range tt.probes {
				if got := c.observe(p.server, p.err, t0.Add(p.at), 10*time.Second); got != p.leave {
					t.Errorf("probe %d (%s at %s): leave %v, want %v", i, p.server, p.at, got, p.leave)
				}
			}
		})
	}
}
