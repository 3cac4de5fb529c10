package svcmain_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/svcmain"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/nats-io/nats.go"
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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
	// The server has answered its attempt: the refusal is the client's
	// last error.
	testwait.For(t, "the server to refuse the anonymous connection", func() bool { return anon.LastError() != nil })
	if anon.IsConnected() || !errors.Is(anon.LastError(), nats.ErrAuthorization) {
		t.Fatalf("without an identity: connected %v, last error %v", anon.IsConnected(), anon.LastError())
	}
	env["B24HUB_NATS_NKEY"] = "/nonexistent/seed"
	if _, _, err := svcmain.ConnectNATS("svc", func(k string) string { return env[k] }); err == nil {
		t.Fatal("a missing seed file was not reported")
	}
}
