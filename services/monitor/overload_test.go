package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/monitor"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// overloaded answers every REST call to the portal the way Bitrix24 does
// once support has blocked an application (503 OVERLOAD_LIMIT, §4.4), and
// passes everything else (the portal's control API) through. The fake
// portal has no such fault of its own yet, so it is injected in front of
// it, where the bitrix client meets the answer.
type overloaded struct{ next http.RoundTripper }

func (o overloaded) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(r.URL.Path, "/rest/") {
		return o.next.RoundTrip(r)
	}
	body := `{"error":"OVERLOAD_LIMIT","error_description":"REST API is blocked due to overload."}`
	return &http.Response{StatusCode: http.StatusServiceUnavailable, Status: "503 Service Unavailable", Proto: "HTTP/1.1",
		ProtoMajor: 1, ProtoMinor: 1, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(bytes.NewBufferString(body)), ContentLength: int64(len(body)), Request: r}, nil
}

// TestOverloadLimitFiresTheDefaultRule follows an OVERLOAD_LIMIT answer
// from the portal through a consumer (the runtime, bitrixport.Classify) to
// its Outcome, and through the monitor, running its default rules (only
// evaluated faster), to a firing overload-limit alert: the kind consumers
// report is the kind the default rule waits for.
func TestOverloadLimitFiresTheDefaultRule(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)

	// The monitor with the default rules.
	rules := strings.Replace(alert.DefaultRulesYAML, "evaluate_every: 30s", "evaluate_every: 100ms", 1)
	if rules == alert.DefaultRulesYAML {
		t.Fatal("default rules no longer set evaluate_every: 30s; adjust the test")
	}
	rulesPath := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := monitor.New(monitor.Config{Addr: "127.0.0.1:0", Token: "test-token-0123456789", AlertRulesFile: rulesPath,
		BatchWait: 5 * time.Millisecond}, monitor.Deps{NC: nc, Pool: pgtest.NewPool(t), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Go(func() {
		if err := svc.Run(runCtx); err != nil {
			t.Errorf("monitor Run: %v", err)
		}
	})

	// A consumer whose portal is blocked.
	p, err := fakeportal.New(fakeportal.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Registered as an installed portal: the monitor watches only live ones.
	kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
	if err != nil {
		t.Fatal(err)
	}
	if err := portals.PutInstalled(ctx, kv, portals.Installed{MemberID: p.MemberID(), Domain: p.Domain(),
		TokenSHA256: portals.HashToken("app-token"), Active: true}); err != nil {
		t.Fatal(err)
	}
	hc := p.Client()
	hc.Transport = overloaded{next: hc.Transport}
	client, err := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "blocked"), MemberID: p.MemberID()},
		bitrix.WithHTTPClient(hc), bitrix.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := consumer.New(srv.Connect(t), consumer.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	const durable = "overload-probe"
	spec := consumer.Spec{Durable: durable, FilterSubjects: eventbus.RawEventFilter("ONCRMDEALUPDATE"), Backoff: []time.Duration{time.Hour}}
	if err := consumer.Register(rt, spec, consumer.DecodeEnvelope, consumer.HandlerFunc[*eventsv1.Envelope](
		func(ctx context.Context, m *consumer.Message[*eventsv1.Envelope]) error {
			_, err := client.GetDeal(ctx, 42)
			return bitrixport.Classify(err)
		})); err != nil {
		t.Fatal(err)
	}
	outcomes := make(chan *eventsv1.Outcome, 4)
	if _, err := nc.Subscribe(eventbus.OutcomesPrefix+".>", func(m *nats.Msg) {
		o := &eventsv1.Outcome{}
		if proto.Unmarshal(m.Data, o) == nil {
			outcomes <- o
		}
	}); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := rt.Run(runCtx); err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})

	env := &eventsv1.Envelope{MessageId: "overload-1", MemberId: p.MemberID(), Domain: p.Domain(), Event: "ONCRMDEALUPDATE",
		EntityId: "42", ReceivedAt: timestamppb.Now(), Source: eventsv1.Source_SOURCE_PUSH, ContentType: "application/x-www-form-urlencoded",
		Body: []byte("event=ONCRMDEALUPDATE&data[FIELDS][ID]=42")}
	data, _ := proto.Marshal(env)
	if _, err := eventbus.NewPublisher(js).Publish(ctx, eventbus.Message{Subject: eventbus.RawEvent(env.MemberId, env.Event),
		MsgID: env.MessageId, Data: data}); err != nil {
		t.Fatal(err)
	}

	var o *eventsv1.Outcome
	select {
	case o = <-outcomes:
	case <-ctx.Done():
		t.Fatal("no outcome")
	}
	if o.Status != eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY || o.ErrorKind != eventbus.ErrorKindOverload || o.Consumer != durable {
		t.Fatalf("outcome %s kind %q (%s), want a retry of kind %q", o.Status, o.ErrorKind, o.Error, eventbus.ErrorKindOverload)
	}

	key := "overload-limit/" + p.MemberID()
	for {
		var alerts struct{ Alerts []map[string]any }
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+svc.Addr()+"/api/v1/alerts?state=firing", nil)
		req.Header.Set("Authorization", "Bearer "+svc.Token())
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = jsonDecode(resp, &alerts)
		}
		for _, a := range alerts.Alerts {
			if a["key"] == key {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("alert %s never fired; firing: %v", key, alerts.Alerts)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func jsonDecode(resp *http.Response, v any) error {
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
