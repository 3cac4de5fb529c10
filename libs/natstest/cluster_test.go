package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// TestClusterFaults runs a three-node cluster with a three-replica stream
// through each fault the helpers offer: the leader killed and restarted, a
// node isolated and healed. The stream keeps every message and takes new
// ones throughout.
func TestClusterFaults(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, js := c.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "S", Subjects: []string{"s.>"}, Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	sent := 0
	publish := func(what string) {
		t.Helper()
		// A publish during a leader election may fail; it is retried with
		// the same id, so the stream keeps it once.
		id := what
		for {
			pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := js.Publish(pctx, "s.x", []byte(what), jetstream.WithMsgID(id))
			pcancel()
			if err == nil {
				sent++
				return
			}
			if ctx.Err() != nil {
				t.Fatalf("publish %s: %v", what, err)
			}
		}
	}
	leader := func() *natstest.Node {
		t.Helper()
		for ctx.Err() == nil {
			if l := c.StreamLeader("S"); l != nil {
				return l
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no stream leader")
		return nil
	}
	publish("before")
	if n := len(c.ClientURLs()); n != 3 {
		t.Fatalf("%d client URLs", n)
	}

	old := leader()
	old.Stop()
	publish("leader-down")
	if now := leader(); now == old {
		t.Fatalf("leader still %s after it stopped", now.Name)
	}
	old.Restart()
	c.WaitHealthy(t, 30*time.Second)

	others := []string{}
	for _, nd := range c.Nodes() {
		if nd != leader() {
			others = append(others, nd.Name)
		}
	}
	c.MoveStreamLeader(t, "S", others[0], 30*time.Second)
	lone := leader()
	c.Isolate(lone.Name)
	for ctx.Err() == nil && (c.StreamLeader("S") == nil || c.StreamLeader("S") == lone) {
		time.Sleep(20 * time.Millisecond)
	}
	// A client of the isolated node cannot reach the stream; one of the
	// majority can.
	for _, nd := range c.Nodes() {
		if nd != lone {
			js, _ = jetstream.New(nd.Connect(t))
			break
		}
	}
	publish("isolated")
	// The isolated node notices it lost the meta leader (about a second).
	for ctx.Err() == nil && c.Healthy() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	c.Heal(lone.Name)
	c.WaitHealthy(t, 30*time.Second)
	publish("healed")

	s, err := js.Stream(ctx, "S")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != uint64(sent) || info.Config.Replicas != 3 {
		t.Errorf("stream has %d messages (want %d), %d replicas", info.State.Msgs, sent, info.Config.Replicas)
	}
	// The isolated node catches up: it answers for the stream on its own
	// once its replica is current (the healthz above covers the meta
	// group, not each stream's replica, so this waits on its own).
	for {
		st := c.Node(lone.Name).Healthz(&server.HealthzOptions{Stream: "S", Account: server.DEFAULT_GLOBAL_ACCOUNT})
		if st.Status == "ok" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s after heal: %s %s", lone.Name, st.Status, st.Error)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
