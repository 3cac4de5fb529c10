package render_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/b24hub/b24hub/services/catalog"
	"github.com/b24hub/b24hub/tools/render"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// TestPermissionsWorkOnARealServer runs nats-server with a user whose
// permissions are ServicePermissions of a declaration, and checks that the
// service can do everything its declaration says with nats.go's jetstream
// package (durable consumers with one and with several filters, pull, ack,
// publish with PubAck, key-value get, put, watch and keys, answering a
// request) and nothing else (an undeclared subject, a write to a read-only
// bucket, another durable).
func TestPermissionsWorkOnARealServer(t *testing.T) {
	decl := svcdecl.Service{
		Name: "contacts", Summary: "x", Role: svcdecl.RoleConsumer,
		Consumers: []svcdecl.Consumer{
			{Durable: "contacts", Stream: "EVENTS", FilterSubjects: []string{"b24.events.*.ONCRMCONTACTADD"}},
			{Durable: "contacts-cmd", Stream: "COMMANDS", FilterSubjects: []string{"b24.commands.contact.>", "b24.commands.all.>"}},
		},
		Publishes:  []string{"b24.outcomes.contacts.>"},
		Subscribes: []string{"b24.control.contacts.>"},
		Buckets: []svcdecl.Bucket{
			{Name: "RATELIMIT", Access: svcdecl.ReadWrite},
			{Name: "PORTALS", Access: svcdecl.Read},
		},
	}
	p := render.ServicePermissions(decl)
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: decl.Name, Password: "pw", Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: p.Publish},
				Subscribe: &server.SubjectPermission{Allow: p.Subscribe},
				Response:  responses(p.AllowResponses),
			}},
		},
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	admin, err := nats.Connect(srv.ClientURL(), nats.UserInfo("admin", "admin"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ajs, err := jetstream.New(admin)
	if err != nil {
		t.Fatal(err)
	}
	for name, subj := range map[string]string{"EVENTS": "b24.events.>", "COMMANDS": "b24.commands.>", "OUTCOMES": "b24.outcomes.>", "OTHER": "b24.other.>"} {
		if _, err := ajs.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subj}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range []string{"RATELIMIT", "PORTALS"} {
		kv, err := ajs.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: b})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "portal.a", []byte("v1")); err != nil {
			t.Fatal(err)
		}
	}
	for _, subj := range []string{"b24.events.p1.ONCRMCONTACTADD", "b24.commands.contact.p1.update"} {
		if _, err := ajs.Publish(ctx, subj, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var violations []string
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo(decl.Name, "pw"),
		nats.CustomInboxPrefix(render.InboxPrefix(decl.Name)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			violations = append(violations, err.Error())
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v (violations: %v)", what, err, violations)
		}
	}

	// Durable consumers: look up the stream, create, info, pull, ack.
	for _, c := range decl.Consumers {
		st, err := js.Stream(ctx, c.Stream)
		step("stream info "+c.Stream, err)
		// As libs/consumer creates it (FilterSubjects), and as nats.go
		// does for a config with one FilterSubject.
		cfg := jetstream.ConsumerConfig{Durable: c.Durable, AckPolicy: jetstream.AckExplicitPolicy, FilterSubjects: c.FilterSubjects}
		cons, err := st.CreateOrUpdateConsumer(ctx, cfg)
		step("create consumer "+c.Durable, err)
		if len(c.FilterSubjects) == 1 {
			cfg.FilterSubjects, cfg.FilterSubject = nil, c.FilterSubjects[0]
			cons, err = st.CreateOrUpdateConsumer(ctx, cfg)
			step("update consumer "+c.Durable+" with one FilterSubject", err)
		}
		_, err = cons.Info(ctx)
		step("consumer info "+c.Durable, err)
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		step("fetch "+c.Durable, err)
		var n int
		for m := range batch.Messages() {
			n++
			step("ack "+c.Durable, m.DoubleAck(ctx))
		}
		step("fetch "+c.Durable, batch.Error())
		if n != 1 {
			t.Fatalf("%s fetched %d messages, want 1", c.Durable, n)
		}
		// Its own consumer only.
		short, cancelShort := context.WithTimeout(ctx, time.Second)
		_, err = st.CreateOrUpdateConsumer(short, jetstream.ConsumerConfig{Durable: "someone-else", FilterSubject: c.FilterSubjects[0]})
		cancelShort()
		if err == nil {
			t.Errorf("%s could create durable someone-else on %s", decl.Name, c.Stream)
		}
	}

	// Publishing: declared subjects with a PubAck; nothing else.
	_, err = js.Publish(ctx, "b24.outcomes.contacts.p1", []byte("done"))
	step("publish a declared subject", err)
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	_, err = js.Publish(short, "b24.other.p1", []byte("x"))
	cancelShort()
	if err == nil {
		t.Error("publishing an undeclared subject succeeded")
	}

	// Key-value: read-write bucket.
	kv, err := js.KeyValue(ctx, "RATELIMIT")
	step("bind RATELIMIT", err)
	_, err = kv.Put(ctx, "portal.b", []byte("v"))
	step("put RATELIMIT", err)
	_, err = kv.Update(ctx, "portal.b", []byte("v2"), 2)
	step("update RATELIMIT", err)
	_, err = kv.Get(ctx, "portal.a")
	step("get RATELIMIT", err)
	step("delete RATELIMIT", kv.Delete(ctx, "portal.b"))
	w, err := kv.WatchAll(ctx)
	step("watch RATELIMIT", err)
	select {
	case e := <-w.Updates():
		if e == nil {
			t.Fatal("watch RATELIMIT: no initial value")
		}
	case <-ctx.Done():
		t.Fatal("watch RATELIMIT: nothing arrived")
	}
	step("stop watch", w.Stop())
	keys, err := kv.ListKeys(ctx)
	step("list keys RATELIMIT", err)
	for range keys.Keys() {
	}

	// Read-only bucket: reads work, writes do not.
	ro, err := js.KeyValue(ctx, "PORTALS")
	step("bind PORTALS", err)
	_, err = ro.Get(ctx, "portal.a")
	step("get PORTALS", err)
	rw, err := ro.Watch(ctx, "portal.*")
	step("watch PORTALS", err)
	<-rw.Updates()
	step("stop watch PORTALS", rw.Stop())
	short, cancelShort = context.WithTimeout(ctx, time.Second)
	_, err = ro.Put(short, "portal.a", []byte("x"))
	cancelShort()
	if err == nil {
		t.Error("a put to the read-only bucket PORTALS succeeded")
	}

	// Answering a request on a subscribed subject.
	sub, err := nc.Subscribe("b24.control.contacts.ping", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	step("subscribe", err)
	defer func() { _ = sub.Unsubscribe() }()
	step("flush", nc.Flush())
	reply, err := admin.Request("b24.control.contacts.ping", nil, 5*time.Second)
	step("request answered", err)
	if string(reply.Data) != "pong" {
		t.Errorf("reply %q", reply.Data)
	}
	// Subscribing elsewhere is refused.
	_, _ = nc.SubscribeSync("b24.events.>")
	_ = nc.Flush()
	// The refusal arrives before the flush's answer, but the error handler
	// runs on its own goroutine: wait until it has seen it. A refusal that
	// never comes fails the wait, and the check below says why.
	_ = testwait.Until(time.Now().Add(testwait.Patience), func() bool {
		mu.Lock()
		defer mu.Unlock()
		return containsAny(violations, `"b24.events.>"`)
	})

	mu.Lock()
	defer mu.Unlock()
	var unexpected []string
	for _, v := range violations {
		if !strings.Contains(v, "b24.other.p1") && !strings.Contains(v, "someone-else") &&
			!strings.Contains(v, "$KV.PORTALS") && !strings.Contains(v, `"b24.events.>"`) {
			unexpected = append(unexpected, v)
		}
	}
	if len(unexpected) > 0 {
		t.Errorf("permission violations the declaration should have allowed: %v", unexpected)
	}
	if !containsAny(violations, `"b24.events.>"`) {
		t.Errorf("subscribing to an undeclared subject was not refused (violations: %v)", violations)
	}
}

func responses(allow bool) *server.ResponsePermission {
	if !allow {
		return nil
	}
	return &server.ResponsePermission{MaxMsgs: 1, Expires: time.Minute}
}

func containsAny(list []string, s string) bool {
	for _, v := range list {
		if strings.Contains(v, s) {
			return true
		}
	}
	return false
}

// TestAuthConfLoadsIntoNATSServer: deploy/nats/auth.conf, with each
// identity's public key in the server's environment, is a configuration
// nats-server accepts, with one nkey user per identity carrying exactly
// the permissions of deploy/nats/permissions.yaml.
func TestAuthConfLoadsIntoNATSServer(t *testing.T) {
	files, err := render.Render(os.DirFS("../.."), catalog.All)
	if err != nil {
		t.Fatal(err)
	}
	var conf []byte
	for _, f := range files {
		if f.Path == "deploy/nats/auth.conf" {
			conf = f.Data
		}
	}
	ids := catalog.Identities()
	keys := map[string]string{}
	for _, p := range ids {
		kp, _ := nkeys.CreateUser()
		pub, _ := kp.PublicKey()
		keys[pub] = p.User
		t.Setenv(render.NKeyVar(p.User), pub)
	}
	path := filepath.Join(t.TempDir(), "auth.conf")
	if err := os.WriteFile(path, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects auth.conf: %v", err)
	}
	if len(opts.Nkeys) != len(ids) {
		t.Fatalf("%d nkey users, want %d", len(opts.Nkeys), len(ids))
	}
	for _, u := range opts.Nkeys {
		user := keys[u.Nkey]
		i := slices.IndexFunc(ids, func(p svcdecl.Permissions) bool { return p.User == user })
		if i < 0 {
			t.Fatalf("unknown key %s", u.Nkey)
		}
		want := ids[i]
		if !slices.Equal(u.Permissions.Publish.Allow, want.Publish) || !slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe) ||
			(u.Permissions.Response != nil) != want.AllowResponses {
			t.Errorf("%s: permissions %+v, want %+v", user, u.Permissions, want)
		}
	}
}
