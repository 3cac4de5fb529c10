package telephony_test

import (
	"context"
	"encoding/json"
	"google.golang.org/protobuf/encoding/protojson"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/pgtest"
	"github.com/b24hub/b24hub/libs/testwait"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/telephony"
	"github.com/b24hub/b24hub/services/telephony/internal/consumer/callend"
	"github.com/b24hub/b24hub/services/telephony/internal/store"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

type env struct {
	t      *testing.T
	srv    *natstest.Server
	js     jetstream.JetStream
	pool   *pgxpool.Pool
	portal *fakeportal.Portal
	client *bitrix.Client

	mu      sync.Mutex
	changes []*eventsv1.DomainChange
}

func newEnv(t *testing.T, pcfg fakeportal.Config) *env {
	e := &env{t: t, pool: pgtest.NewPool(t), srv: natstest.Start(t)}
	var nc *nats.Conn
	nc, e.js = e.srv.JetStream(t)
	if err := eventbus.Provision(context.Background(), e.js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := fakeportal.New(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	e.portal = p
	e.client, err = bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "tel"), MemberID: p.MemberID()},
		bitrix.WithHTTPClient(p.Client()), bitrix.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	in := consumertest.NewIngress(t, e.js)
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: in.URL(), Events: []string{"ONVOXIMPLANTCALLEND"}})
	if _, err := nc.Subscribe("b24.changes.call.>", func(m *nats.Msg) {
		dc := &eventsv1.DomainChange{}
		if proto.Unmarshal(m.Data, dc) == nil {
			e.mu.Lock()
			e.changes = append(e.changes, dc)
			e.mu.Unlock()
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The subscription is in place at the server before the service can
	// publish: a change published first would be missed for good.
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) start(cfg telephony.Config) {
	// As svcmain does before Start.
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		e.t.Fatal(err)
	}
	svc, err := telephony.New(cfg, telephony.Deps{NC: e.srv.Connect(e.t), Pool: e.pool,
		Logger: slog.New(slog.DiscardHandler), Portals: bitrixport.Static{Client: e.client}})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Errorf("Run: %v", err)
		}
	})
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	testwait.For(e.t, what, cond)
}

type callRow struct {
	status, code, fields string
	fileID               int64
}

func (e *env) call(id string) (callRow, bool) {
	var r callRow
	err := e.pool.QueryRow(context.Background(), `SELECT record_status, record_file_id, failed_code, fields::text FROM telephony.calls WHERE call_id = $1`, id).
		Scan(&r.status, &r.fileID, &r.code, &r.fields)
	return r, err == nil
}

func fastConfig() telephony.Config {
	cfg := telephony.DefaultConfig()
	cfg.RecordingWait, cfg.RecordingPoll = 3*time.Second, 200*time.Millisecond
	cfg.OutboxInterval, cfg.DrainTimeout = 50*time.Millisecond, 5*time.Second
	cfg.Consumer.Backoff = []time.Duration{50 * time.Millisecond}
	cfg.Consumer.AckWait = 2 * time.Second
	cfg.Consumer.MaxDeliver = 40
	return cfg
}

func TestLateRecordingIsWaitedFor(t *testing.T) {
	e := newEnv(t, fakeportal.Config{RecordingDelay: time.Second})
	cfg := fastConfig()
	// The recording shows up after 1 s; the wait only bounds a loaded
	// machine's slowest case, the test takes as long as the recording.
	cfg.RecordingWait = 30 * time.Second
	e.start(cfg)
	id := e.portal.EndCall(fakeportal.Call{Duration: 42, PhoneNumber: "+100"}, true)
	e.eventually("mirrored", func() bool { _, ok := e.call(id); return ok })
	row, _ := e.call(id)
	if row.status != callend.RecordPresent || row.fileID == 0 || row.code != "200" {
		t.Errorf("call %+v", row)
	}
	// The change leaves through the outbox after the row is committed:
	// wait for it rather than expect it at the moment the row shows.
	e.eventually("the change published", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.changes) > 0
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.changes) != 1 || e.changes[0].Kind != eventsv1.ChangeKind_CHANGE_KIND_CREATED || e.changes[0].EntityId != id {
		t.Errorf("changes %v", e.changes)
	}
}

func TestNoRecordingAfterTheWaitAndStringCodes(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig())
	missing := e.portal.EndCall(fakeportal.Call{Duration: 10, NoRecording: true}, true)
	busy := e.portal.EndCall(fakeportal.Call{Duration: 0, FailedCode: "603-S", FailedReason: "Declined", NoRecording: true}, true)
	e.eventually("both mirrored", func() bool {
		_, a := e.call(missing)
		_, b := e.call(busy)
		return a && b
	})
	if row, _ := e.call(missing); row.status != callend.RecordNone {
		t.Errorf("answered call without recording: %+v", row)
	}
	if row, _ := e.call(busy); row.status != callend.RecordNotExpected || row.code != "603-S" {
		t.Errorf("declined call: %+v", row)
	}
}

func TestConformance(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	id := e.portal.EndCall(fakeportal.Call{Duration: 5}, false)
	h := callend.New(bitrixport.Static{Client: e.client}, store.New(e.pool), nil, callend.Options{})
	consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
		Spec: callend.Spec(), Decode: consumer.DecodeEnvelope, Handler: h, Server: e.srv,
		Valid: []consumertest.Fixture{consumertest.EnvelopeFixture(&eventsv1.Envelope{
			MessageId: "call-1", MemberId: e.portal.MemberID(), Event: "ONVOXIMPLANTCALLEND", EntityId: id})},
		Effects: func(t testing.TB) string {
			var n int
			var hash string
			_ = e.pool.QueryRow(context.Background(), `SELECT count(*), max(snapshot_hash) FROM telephony.calls`).Scan(&n, &hash)
			var out int
			_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM telephony.outbox`).Scan(&out)
			return hash + "/" + string(rune('0'+n)) + "/" + string(rune('0'+out))
		},
	})
}

func TestConfigFromEnv(t *testing.T) {
	cfg, err := telephony.ConfigFromEnv(func(k string) string {
		return map[string]string{"B24HUB_TELEPHONY_RECORDING_WAIT": "30s", "B24HUB_TELEPHONY_MAX_DELIVER": "20"}[k]
	})
	if err != nil || cfg.RecordingWait != 30*time.Second || cfg.Consumer.MaxDeliver != 20 || cfg.RecordingPoll != 10*time.Second {
		t.Errorf("%+v %v", cfg, err)
	}
}

// TestRecordingURLIsResolvedWhenAsked: a recording's download URL carries a
// live auth token, so neither the mirror nor the published change holds it;
// the service resolves a fresh one from the file id on request.
func TestRecordingURLIsResolvedWhenAsked(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig())
	id := e.portal.EndCall(fakeportal.Call{Duration: 42, PhoneNumber: "+100"}, true)
	e.eventually("mirrored with its recording", func() bool { r, ok := e.call(id); return ok && r.fileID != 0 })
	e.eventually("change published", func() bool { e.mu.Lock(); defer e.mu.Unlock(); return len(e.changes) == 1 })
	row, _ := e.call(id)
	e.mu.Lock()
	published, _ := protojson.Marshal(e.changes[0])
	e.mu.Unlock()
	for where, text := range map[string]string{"the mirror": row.fields, "the change": string(published)} {
		if strings.Contains(text, "DOWNLOAD") || strings.Contains(text, "token=") || strings.Contains(text, "auth=") {
			t.Errorf("%s holds a download URL: %s", where, text)
		}
	}

	nc := e.srv.Connect(t)
	ask := func(req eventbus.RecordingRequest) eventbus.RecordingReply {
		t.Helper()
		b, _ := json.Marshal(req)
		m, err := nc.Request(eventbus.ControlRecording, b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var rep eventbus.RecordingReply
		if err := json.Unmarshal(m.Data, &rep); err != nil {
			t.Fatal(err)
		}
		return rep
	}
	rep := ask(eventbus.RecordingRequest{MemberID: e.portal.MemberID(), CallID: id})
	if rep.Error != "" || rep.URL == "" || rep.FileID != row.fileID {
		t.Fatalf("recording reply %+v", rep)
	}
	resp, err := e.portal.Client().Get(rep.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("download: %d", resp.StatusCode)
	}
	if rep := ask(eventbus.RecordingRequest{MemberID: e.portal.MemberID(), CallID: "nope"}); !strings.Contains(rep.Error, "not mirrored") {
		t.Errorf("unknown call: %+v", rep)
	}
	if rep := ask(eventbus.RecordingRequest{CallID: id}); !strings.Contains(rep.Error, "required") {
		t.Errorf("no member id: %+v", rep)
	}
}
