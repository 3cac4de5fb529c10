package svcmain_test

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/nats-io/nats.go/jetstream"
)

// A service connects with the identity its environment names and its own
// inbox prefix: its user may read replies on _INBOX.<name> only, so a
// JetStream request works; without the identity the server refuses.
func TestConnectNATSUsesTheServiceIdentity(t *testing.T) {
	srv := natstest.Start(t, natstest.WithIdentities(natstest.Identity{User: "svc", Publish: []string{"$JS.API.INFO"}, Subscribe: []string{"_INBOX.svc.>"}}))
	env := map[string]string{"B24HUB_NATS_URL": srv.URL(), "B24HUB_NATS_NKEY": srv.SeedFile(t, "svc")}
	nc, url, err := svcmain.ConnectNATS("svc", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if url != srv.URL() {
		t.Errorf("url %q", url)
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("a JetStream request with the service's inbox: %v", err)
	}

	delete(env, "B24HUB_NATS_NKEY")
	anon, _, err := svcmain.ConnectNATS("svc", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	time.Sleep(300 * time.Millisecond)
	if anon.IsConnected() {
		t.Fatal("connected without an identity")
	}
	env["B24HUB_NATS_NKEY"] = "/nonexistent/seed"
	if _, _, err := svcmain.ConnectNATS("svc", func(k string) string { return env[k] }); err == nil {
		t.Fatal("a missing seed file was not reported")
	}
}
