package eventbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/natstest"
)

// TestLostPubAckRetriedIsStoredOnce: JetStream stores a message but its
// PubAck never reaches the publisher (here: the reply subscription is gone
// while the publish waits). The publish ends with ErrNotConfirmed once the
// confirm timeout passes; published again with the same Nats-Msg-Id, as
// every caller that retries does, it is confirmed as a duplicate of the
// stored one and the stream holds it once.
func TestLostPubAckRetriedIsStoredOnce(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := Provision(ctx, js, StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	p := NewPublisher(js, WithConfirmTimeout(300*time.Millisecond))
	subject := RawEvent("m1", "ONCRMDEALUPDATE")
	if _, err := p.Publish(ctx, Message{Subject: subject, MsgID: "first", Data: []byte("1")}); err != nil {
		t.Fatal(err)
	}

	// Lose the replies: the inbox subscription is dropped but the
	// publisher still routes replies to it.
	p.replyMu.Lock()
	if err := p.replySub.Unsubscribe(); err != nil {
		p.replyMu.Unlock()
		t.Fatal(err)
	}
	p.replyMu.Unlock()
	if err := p.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err := p.Publish(ctx, Message{Subject: subject, MsgID: "lost-ack", Data: []byte("2")})
	if !errors.Is(err, ErrNotConfirmed) {
		t.Fatalf("publish whose ack was lost: %v, want ErrNotConfirmed", err)
	}
	stream, err := js.Stream(ctx, StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	// The message was stored all the same.
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the unconfirmed message never reached the stream: %d messages", info.State.Msgs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Replies reach the publisher again (a new inbox subscription), and
	// the retry with the same message id is confirmed as a duplicate.
	p.replyMu.Lock()
	p.replySub = nil
	p.replyMu.Unlock()
	ack, err := p.Publish(ctx, Message{Subject: subject, MsgID: "lost-ack", Data: []byte("2")})
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate || ack.Sequence != 2 {
		t.Fatalf("retry: %+v, want a duplicate of sequence 2", ack)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2 (the retried one once)", info.State.Msgs)
	}
}
