package bitrixport_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
)

func newFake(t *testing.T, cfg fakeportal.Config) *fakeportal.Portal {
	t.Helper()
	p, err := fakeportal.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func provisioned(t *testing.T) *natstest.Server {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv
}

// TestSharedClientsShareOneBucket builds the clients of two "services" the
// way their commands do, each on its own NATS connection and each asking
// for a private limiter, calls one portal through both, and finds every
// call counted in the one leaky bucket of the portal in B24_RATELIMIT.
// (That a shared bucket keeps replicas under the portal's limit where
// private ones overflow it is libs/bitrix's TestReplicasShareLimiterThroughNATS.)
func TestSharedClientsShareOneBucket(t *testing.T) {
	ctx := context.Background()
	srv := provisioned(t)
	p := newFake(t, fakeportal.Config{})
	id := bitrix.ID(p.CreateDeal(nil, false))
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: p.MemberID(), TokenSHA256: portals.HashToken("t"),
		WebhookURL: p.AddWebhook(1, "hook"), Active: true, Source: portals.SourceFile}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	const perService = 10
	for range 2 {
		_, js := srv.JetStream(t)
		rc, err := bitrixport.SharedClients(ctx, js, reg, bitrixport.App{}, bitrix.WithHTTPClient(p.Client()),
			bitrix.WithLimiter(bitrix.NewLocalLimiter(-1, nil))) // must not win over the shared one
		if err != nil {
			t.Fatal(err)
		}
		c, err := rc.ClientFor(ctx, p.MemberID())
		if err != nil {
			t.Fatal(err)
		}
		for range perService {
			if _, err := c.GetDeal(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, js := srv.JetStream(t)
	kv, err := js.KeyValue(ctx, eventbus.BucketRateLimit)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range keys.Keys() {
		got = append(got, k)
	}
	if len(got) != 1 || !strings.Contains(got[0], p.MemberID()) {
		t.Fatalf("%s keys %v, want one for the portal", eventbus.BucketRateLimit, got)
	}
	e, err := kv.Get(ctx, got[0])
	if err != nil {
		t.Fatal(err)
	}
	var state struct{ Level float64 }
	if err := json.Unmarshal(e.Value(), &state); err != nil {
		t.Fatal(err)
	}
	// The bucket drains 2/s (the standard plan) while the test runs.
	if want := 2*perService - 2*time.Since(start).Seconds(); state.Level < want {
		t.Fatalf("shared level %.2f, want at least %.2f: the services did not share one bucket", state.Level, want)
	}
}

func TestSharedClientsNeedTheBucket(t *testing.T) {
	srv := natstest.Start(t) // not provisioned
	_, js := srv.JetStream(t)
	_, err := bitrixport.SharedClients(context.Background(), js, portals.NewRegistry(), bitrixport.App{})
	if err == nil || !strings.Contains(err.Error(), eventbus.BucketRateLimit) || !strings.Contains(err.Error(), "topology apply") {
		t.Fatalf("err = %v", err)
	}
}
