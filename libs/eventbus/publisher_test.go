package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/testwait"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func provisioned(t *testing.T) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// TestPublishConcurrent checks that every concurrent publisher gets the
// ack of its own message: the sequence the ack names holds that message.
func TestPublishConcurrent(t *testing.T) {
	_, js := provisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := eventbus.NewPublisher(js)
	const n = 400
	seqs := make([]uint64, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			ack, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: fmt.Sprint("c-", i), Data: []byte(fmt.Sprint(i))})
			if err != nil {
				errs <- err
				return
			}
			seqs[i] = ack.Sequence
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, seq := range seqs {
		if seen[seq] {
			t.Fatalf("sequence %d acked twice", seq)
		}
		seen[seq] = true
		raw, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		if string(raw.Data) != fmt.Sprint(i) {
			t.Fatalf("publish %d got the ack of sequence %d, which holds %q", i, seq, raw.Data)
		}
	}
}

func TestPublishErrors(t *testing.T) {
	_, js := provisioned(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := eventbus.NewPublisher(js)

	// No stream takes the subject: ErrNoStream once the patience (2 s) is
	// spent, not the end of the caller's context (that would wrap
	// ErrNotConfirmed and the context's error, and the context is still
	// live).
	_, err := pub.Publish(ctx, eventbus.Message{Subject: "nowhere.at.all", MsgID: "x"})
	if !errors.Is(err, eventbus.ErrNoStream) || ctx.Err() != nil {
		t.Fatalf("no stream: %v (context: %v), want ErrNoStream before the context ends", err, ctx.Err())
	}

	// JetStream refuses the message: its API error comes back.
	_, err = pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "wrong-seq",
		Header: nats.Header{jetstream.ExpectedLastSeqHeader: []string{"999999"}}})
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
		t.Fatalf("wrong last sequence: %v, want the API error", err)
	}

	// Larger than the connection may send: not confirmed, at once.
	big := []byte(strings.Repeat("x", 2<<20))
	if _, err = pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "big", Data: big}); !errors.Is(err, eventbus.ErrNotConfirmed) {
		t.Fatalf("oversized: %v, want ErrNotConfirmed", err)
	}

	// A context that ends first: ErrNotConfirmed.
	done, stop := context.WithCancel(ctx)
	stop()
	_, err = pub.Publish(done, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "late"})
	if !errors.Is(err, eventbus.ErrNotConfirmed) {
		t.Fatalf("ended context: %v, want ErrNotConfirmed", err)
	}

	// The publisher still works after all of that.
	if _, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "ok"}); err != nil {
		t.Fatal(err)
	}
}

// TestPublishRecoversAfterBrokerRestart: the reply subscription survives a
// reconnect, and publishes confirm again once the broker is back.
func TestPublishRecoversAfterBrokerRestart(t *testing.T) {
	srv, js := provisioned(t)
	pub := eventbus.NewPublisher(js)
	publish := func(id string, d time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: id})
		return err
	}
	if err := publish("before", 5*time.Second); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if err := publish("during", 300*time.Millisecond); !errors.Is(err, eventbus.ErrNotConfirmed) {
		t.Fatalf("broker down: %v, want ErrNotConfirmed", err)
	}
	srv.Restart()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := publish("after", time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no confirmation after the broker came back: %v", err)
		}
	}
}

// TestPublishWaitsForAStreamThatAppears: a publish made while no stream
// takes its subject yet (a broker that has just restarted) is stored once
// the stream is there, instead of failing at the first "no responders".
func TestPublishWaitsForAStreamThatAppears(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pub := eventbus.NewPublisher(js)
	// The streams are created once the publish has reached the server
	// (its count of inbound messages moved), so the publish is under way
	// before its stream exists however slow the machine. A subscriber on
	// the subject would not do: it takes the request, and NATS no longer
	// answers "no responders".
	received := func() int64 {
		v, err := srv.Varz(nil)
		if err != nil {
			return 0
		}
		return v.InMsgs
	}
	before := received()
	provisioned := make(chan error, 1)
	go func() {
		if err := testwait.Until(time.Now().Add(testwait.Patience), func() bool { return received() > before }); err != nil {
			provisioned <- fmt.Errorf("the publish never reached the server: %w", err)
			return
		}
		provisioned <- eventbus.Provision(ctx, js, eventbus.StreamOptions{})
	}()
	ack, err := pub.Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "early", Data: []byte("x")})
	if err != nil || ack.Stream != eventbus.StreamEvents {
		t.Fatalf("publish before the stream existed: %+v, %v", ack, err)
	}
	// The publish is confirmed as soon as B24_EVENTS exists; the other
	// streams are still being created, under ctx.
	if err := <-provisioned; err != nil {
		t.Fatal(err)
	}
}

// TestConfirmTimeout: with WithConfirmTimeout a publish nobody answers
// (a plain subscriber takes the subject, no stream does) ends with
// ErrNotConfirmed once the timeout has passed, without a context deadline,
// and the publisher goes on confirming other messages.
func TestConfirmTimeout(t *testing.T) {
	srv, js := provisioned(t)
	nc := srv.Connect(t)
	sub, err := nc.SubscribeSync("silent.subject")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	const timeout = 200 * time.Millisecond
	pub := eventbus.NewPublisher(js, eventbus.WithConfirmTimeout(timeout))

	// The context's own deadline is far later: if the confirm timeout did
	// not act, the publish ends by it, its error wraps the context's, and
	// the test fails. A timer never fires early, so the publish took at
	// least the timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err = pub.Publish(ctx, eventbus.Message{Subject: "silent.subject", MsgID: "unanswered"})
	if took := time.Since(start); !errors.Is(err, eventbus.ErrNotConfirmed) || ctx.Err() != nil || took < timeout {
		t.Fatalf("unanswered publish: %v after %s (context: %v), want ErrNotConfirmed after %s", err, took, ctx.Err(), timeout)
	}
	if _, err := sub.NextMsg(time.Minute); err != nil {
		t.Fatalf("the unanswered message was not sent: %v", err)
	}
	if _, err := pub.Publish(context.Background(), eventbus.Message{Subject: eventbus.RawEvent("m1", "E"), MsgID: "answered"}); err != nil {
		t.Fatal(err)
	}
}
