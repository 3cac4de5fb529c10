package catalog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/b24hub/b24hub/services/catalog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// bus is a server with authorization on, configured with every identity
// of the catalog (as deploy/nats/permissions.yaml and the local stack
// are), and the topology provisioned by the admin identity.
type bus struct {
	srv *natstest.Server
	mu  sync.Mutex
	// violations are the permission errors the server sent, by user.
	violations map[string][]string
}

func startBus(t *testing.T) *bus {
	t.Helper()
	var ids []natstest.Identity
	for _, p := range catalog.Identities() {
		ids = append(ids, natstest.Identity(p))
	}
	b := &bus{srv: natstest.Start(t, natstest.WithIdentities(ids...)), violations: map[string][]string{}}
	_, js := b.as(t, svcdecl.AdminUser)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatalf("the topology identity cannot provision: %v", err)
	}
	return b
}

// as connects as user, recording the permission violations it causes.
func (b *bus) as(t *testing.T, user string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := b.srv.ConnectAs(t, user, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		b.mu.Lock()
		b.violations[user] = append(b.violations[user], err.Error())
		b.mu.Unlock()
	}))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// refusedSubscribe reports whether the server refused user's subscription
// to subject.
func (b *bus) refusedSubscribe(t *testing.T, nc *nats.Conn, user, subject string) bool {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		return true
	}
	defer func() { _ = sub.Unsubscribe() }()
	_ = nc.Flush()
	// The refusal comes before the flush's answer; the error handler that
	// records it runs on its own goroutine.
	return b.violated(user, func(v string) bool {
		return strings.Contains(strings.ToLower(v), "subscription") && strings.Contains(v, `"`+subject+`"`)
	})
}

// violated reports whether the server reported a permission violation of
// user that match accepts, waiting for it up to testwait.Patience.
func (b *bus) violated(user string, match func(string) bool) bool {
	return testwait.Until(time.Now().Add(testwait.Patience), func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return slices.ContainsFunc(b.violations[user], match)
	}) == nil
}

// concrete turns a subject pattern into one subject it matches.
func concrete(pattern string) string {
	return strings.NewReplacer("*", "p1", ">", "p1").Replace(pattern)
}

// listConsumers lists every consumer of stream.
func listConsumers(ctx context.Context, js jetstream.JetStream, stream string) error {
	str, err := js.Stream(ctx, stream)
	if err != nil {
		return err
	}
	l := str.ListConsumers(ctx)
	for range l.Info() {
	}
	return l.Err()
}

// short bounds a call expected to succeed: generous, since a loaded
// machine answers slowly and a passing call returns at once anyway.
func short(t *testing.T) context.Context { return within(t, time.Minute) }

// refusal bounds a call expected to be refused: the server drops a
// forbidden request, so no answer comes and it times out.
func refusal(t *testing.T) context.Context { return within(t, 300*time.Millisecond) }

func within(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestEveryServiceHasLeastPrivilege connects as each service with the
// permissions its declaration derives and proves both halves: what it
// needs works (its durable consumers, its publishes with a PubAck, its
// buckets as declared, its requests) and what it must not do is refused by
// the server (raw events from a consumer, tokens read by the ingress,
// answering install requests, commands, streams deleted, another
// identity's replies).
func TestEveryServiceHasLeastPrivilege(t *testing.T) {
	b := startBus(t)
	rawEventPublishers := []string{"ingress", "subscriptions", "monitor"}
	for _, s := range catalog.All {
		t.Run(s.Name, func(t *testing.T) {
			nc, js := b.as(t, s.Name)
			// What it needs works.
			for _, c := range s.Consumers {
				cons, err := js.CreateOrUpdateConsumer(short(t), c.Stream, jetstream.ConsumerConfig{
					Durable: c.Durable, FilterSubjects: c.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy})
				if err != nil {
					t.Fatalf("its durable %s on %s: %v", c.Durable, c.Stream, err)
				}
				if _, err := cons.Info(short(t)); err != nil {
					t.Errorf("info of its durable %s: %v", c.Durable, err)
				}
				if _, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond)); err != nil {
					t.Errorf("pull from its durable %s: %v", c.Durable, err)
				}
			}
			for _, p := range s.Publishes {
				subj := concrete(p)
				if p == eventbus.ControlInstall || p == eventbus.ControlDestinationsReplay {
					continue // a core request, not stored in a stream
				}
				if _, err := js.Publish(short(t), subj, []byte("{}")); err != nil {
					t.Errorf("publish %s (declared %s): %v", subj, p, err)
				}
			}
			for _, bk := range s.Buckets {
				kv, err := js.KeyValue(short(t), bk.Name)
				if err != nil {
					t.Errorf("bucket %s: %v", bk.Name, err)
					continue
				}
				if _, err := kv.Get(short(t), "absent"); !errors.Is(err, jetstream.ErrKeyNotFound) {
					t.Errorf("get from %s: %v", bk.Name, err)
				}
				ctx := short(t)
				if bk.Access == svcdecl.Read {
					ctx = refusal(t)
				}
				_, err = kv.Put(ctx, "k-"+s.Name, []byte("v"))
				if bk.Access == svcdecl.ReadWrite && err != nil {
					t.Errorf("put to %s (read-write): %v", bk.Name, err)
				}
				if bk.Access == svcdecl.Read && err == nil {
					t.Errorf("put to %s succeeded with read access", bk.Name)
				}
			}
			for _, st := range s.Checks {
				if err := eventbus.CheckStreams(short(t), js, st); err != nil {
					t.Errorf("readiness check of %s: %v", st, err)
				}
			}
			for _, st := range s.Inspects {
				if err := listConsumers(short(t), js, st); err != nil {
					t.Errorf("list the consumers of %s: %v", st, err)
				}
				str, err := js.Stream(short(t), st)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := str.GetMsg(short(t), 1); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
					t.Errorf("get a message of %s: %v", st, err)
				}
			}
			for _, st := range s.Scans {
				oc, err := js.OrderedConsumer(short(t), st, jetstream.OrderedConsumerConfig{HeadersOnly: true})
				if err != nil {
					t.Fatalf("ordered consumer on %s: %v", st, err)
				}
				if _, err := oc.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond)); err != nil {
					t.Errorf("read %s: %v", st, err)
				}
			}
			if !slices.Contains(s.Inspects, eventbus.StreamEvents) {
				if err := listConsumers(refusal(t), js, eventbus.StreamEvents); err == nil {
					t.Errorf("%s listed the consumers of %s", s.Name, eventbus.StreamEvents)
				}
			}

			// What it must not do is refused.
			if !slices.Contains(rawEventPublishers, s.Name) {
				if _, err := js.Publish(refusal(t), eventbus.RawEvent("p1", "ONCRMDEALUPDATE"), []byte("{}")); err == nil {
					t.Errorf("%s published a raw event", s.Name)
				}
			}
			if _, err := js.Publish(refusal(t), eventbus.Command("deal", "p1", "update"), []byte("{}")); err == nil {
				t.Errorf("%s published a deal command", s.Name)
			}
			if s.Name != "subscriptions" && !b.refusedSubscribe(t, nc, s.Name, eventbus.ControlInstall) {
				t.Errorf("%s may listen for install requests", s.Name)
			}
			if !slices.ContainsFunc(s.Buckets, func(bk svcdecl.Bucket) bool { return bk.Name == eventbus.BucketTokens }) {
				if _, err := js.KeyValue(refusal(t), eventbus.BucketTokens); err == nil {
					t.Errorf("%s may open %s", s.Name, eventbus.BucketTokens)
				}
				if !b.refusedSubscribe(t, nc, s.Name, "$KV."+eventbus.BucketTokens+".>") {
					t.Errorf("%s may read %s's writes", s.Name, eventbus.BucketTokens)
				}
			}
			if err := js.DeleteStream(refusal(t), eventbus.StreamEvents); err == nil {
				t.Errorf("%s deleted a stream", s.Name)
			}
			for _, st := range s.RuntimeConsumerStreams {
				// Durables named at run time (the destinations service).
				if _, err := js.CreateOrUpdateConsumer(short(t), st, jetstream.ConsumerConfig{
					Durable: "runtime-" + s.Name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
					t.Errorf("runtime durable on %s: %v", st, err)
				}
			}
			// Scanning (ordered consumers with generated names) cannot be
			// told apart from creating a named consumer: docs/security.md.
			if !slices.Contains(s.RuntimeConsumerStreams, eventbus.StreamEvents) && !slices.Contains(s.Scans, eventbus.StreamEvents) {
				if _, err := js.CreateOrUpdateConsumer(refusal(t), eventbus.StreamEvents, jetstream.ConsumerConfig{Durable: "intruder"}); err == nil {
					t.Errorf("%s created someone else's durable", s.Name)
				}
			}
			if _, err := js.CreateOrUpdateConsumer(refusal(t), eventbus.StreamCommands, jetstream.ConsumerConfig{Durable: "intruder"}); err == nil &&
				!slices.ContainsFunc(s.Consumers, func(c svcdecl.Consumer) bool { return c.Stream == eventbus.StreamCommands }) {
				t.Errorf("%s created a durable on %s", s.Name, eventbus.StreamCommands)
			}
			// Another identity's replies (PubAcks, install decisions, KV values).
			other := "_INBOX.subscriptions.>"
			if s.Name == "subscriptions" {
				other = "_INBOX.ingress.>"
			}
			if !b.refusedSubscribe(t, nc, s.Name, other) {
				t.Errorf("%s may read %s", s.Name, other)
			}
			if s.Name != "subscriptions" && !b.refusedSubscribe(t, nc, s.Name, eventbus.ControlSubscriptionsApply) {
				t.Errorf("%s may answer subscriptions requests", s.Name)
			}
		})
	}
}

// Only the subscriptions identity answers install requests: the ingress's
// request reaches it and its decision comes back, while a decision
// published by any other identity onto the ingress's inbox is refused.
func TestOnlySubscriptionsDecidesInstalls(t *testing.T) {
	b := startBus(t)
	ingress, _ := b.as(t, "ingress")
	subs, _ := b.as(t, "subscriptions")
	if _, err := subs.Subscribe(eventbus.ControlInstall, func(m *nats.Msg) { _ = m.Respond([]byte(`{"accepted":false}`)) }); err != nil {
		t.Fatal(err)
	}
	_ = subs.Flush()
	reply, err := ingress.Request(eventbus.ControlInstall, []byte("{}"), 5*time.Second)
	if err != nil || string(reply.Data) != `{"accepted":false}` {
		t.Fatalf("the ingress's install request: %v %v", reply, err)
	}
	for _, s := range catalog.All {
		if s.Name == "subscriptions" {
			continue
		}
		nc, _ := b.as(t, s.Name)
		// A forged "accepted" onto the ingress's reply subjects.
		_ = nc.Publish("_INBOX.ingress.forged.1", []byte(`{"accepted":true}`))
		_ = nc.Flush()
		refused := b.violated(s.Name, func(v string) bool { return strings.Contains(v, "_INBOX.ingress.forged.1") })
		if !refused {
			t.Errorf("%s published onto the ingress's inbox", s.Name)
		}
	}
}

// Consumers act only on what the bus vouches for: a deal command sent by
// an identity that may not publish it never reaches deal-sync's durable
// (so never its handler); the declared command publisher's does.
func TestDealCommandsOnlyFromTheirPublisher(t *testing.T) {
	b := startBus(t)
	ds, _ := catalog.All.Lookup("deal-sync")
	var cmd svcdecl.Consumer
	for _, c := range ds.Consumers {
		if c.Stream == eventbus.StreamCommands {
			cmd = c
		}
	}
	subject := eventbus.Command("deal", "p1", "update")
	for _, p := range catalog.Identities() {
		if p.User == svcdecl.AdminUser || p.User == svcdecl.CommandPublisher(cmd.Durable) {
			continue
		}
		_, js := b.as(t, p.User)
		if _, err := js.Publish(refusal(t), subject, []byte("forged by "+p.User)); err == nil {
			t.Errorf("%s published a deal command", p.User)
		}
	}
	_, pub := b.as(t, svcdecl.CommandPublisher(cmd.Durable))
	if _, err := pub.Publish(short(t), subject, []byte("genuine")); err != nil {
		t.Fatalf("the command publisher: %v", err)
	}
	if _, err := pub.Publish(refusal(t), eventbus.Command("deal", "p1", "delete"), nil); err == nil {
		t.Error("the command publisher published an undeclared action")
	}
	_, js := b.as(t, "deal-sync")
	cons, err := js.CreateOrUpdateConsumer(short(t), cmd.Stream, jetstream.ConsumerConfig{Durable: cmd.Durable, FilterSubjects: cmd.FilterSubjects, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(10, jetstream.FetchMaxWait(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for m := range batch.Messages() {
		got = append(got, string(m.Data()))
		_ = m.Ack()
	}
	if !slices.Equal(got, []string{"genuine"}) {
		t.Errorf("deal-sync's durable received %q, want only the publisher's command", got)
	}
}
