package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

const (
	member = "a223c6b3710f85df22e9377d6c4f7553"
	token  = "51856fefc120afa4b628cc82d3935cce"
)

type stack struct {
	srv  *natstest.Server
	js   jetstream.JetStream
	nc   *nats.Conn
	base string
	reg  *portals.Registry
	rec  *tracetest.SpanRecorder
}

func start(t *testing.T) *stack {
	t.Helper()
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true, Domain: "some-domain.bitrix24.com"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := ingress.ConfigFromEnv(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	cfg.PublishTimeout = 500 * time.Millisecond
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	svc, err := ingress.New(cfg, ingress.Deps{NC: nc, Portals: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &stack{srv: srv, js: js, nc: nc, base: "http://" + svc.Addr(), reg: reg, rec: rec}
}

func dealUpdate(tok string, id string) string {
	v := url.Values{}
	v.Set("event", "ONCRMDEALUPDATE")
	v.Set("event_handler_id", "201")
	v.Set("data[FIELDS][ID]", id)
	v.Set("ts", "1736405807")
	v.Set("auth[access_token]", "s6p6eclrvim6da22ft9ch94ekreb52lv")
	v.Set("auth[refresh_token]", "4s386p3q0tr8dy89xvmt96234v3dljg8")
	v.Set("auth[domain]", "some-domain.bitrix24.com")
	v.Set("auth[member_id]", member)
	v.Set("auth[application_token]", tok)
	return v.Encode()
}

func post(t *testing.T, url, ct, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, ct, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestAcceptedEventIsStoredRedacted(t *testing.T) {
	st := start(t)
	form := "application/x-www-form-urlencoded"
	code, body := post(t, st.base+"/bitrix24/events", form, dealUpdate(token, "759"))
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	// The same delivery again is a duplicate PubAck: 200, one message.
	if code, body := post(t, st.base+"/bitrix24/events/sales", form, dealUpdate(token, "759")); code != http.StatusOK {
		t.Fatalf("duplicate: status %d: %s", code, body)
	}
	if n := streamMsgs(t, st.js); n != 1 {
		t.Fatalf("stream has %d messages, want 1", n)
	}
	s, _ := st.js.Stream(context.Background(), eventbus.StreamEvents)
	raw, err := s.GetLastMsgForSubject(context.Background(), eventbus.RawEvent(member, "ONCRMDEALUPDATE"))
	if err != nil {
		t.Fatal(err)
	}
	var env eventsv1.Envelope
	if err := proto.Unmarshal(raw.Data, &env); err != nil {
		t.Fatal(err)
	}
	var resp struct{ ID string }
	_ = json.Unmarshal([]byte(body), &resp)
	if env.GetMessageId() != resp.ID || raw.Header.Get(eventbus.HeaderMsgID) != resp.ID {
		t.Errorf("message id %q / header %q, answer %q", env.GetMessageId(), raw.Header.Get(eventbus.HeaderMsgID), resp.ID)
	}
	if env.GetEntityId() != "759" || env.GetSource() != eventsv1.Source_SOURCE_PUSH || env.GetEventTs().GetSeconds() != 1736405807 {
		t.Errorf("envelope %+v", &env)
	}
	// The stored message is exactly the library's raw-event message, the
	// one the conformance suite and the other publishers use.
	want, err := eventbus.RawEventMessage(&env, nil)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Subject != want.Subject || !bytes.Equal(raw.Data, want.Data) {
		t.Errorf("stored subject %q, want %q; payload equal: %v", raw.Subject, want.Subject, bytes.Equal(raw.Data, want.Data))
	}
	for k, v := range want.Header {
		if got := raw.Header.Values(k); !slices.Equal(got, v) {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	for _, secret := range []string{"s6p6eclrvim6da22ft9ch94ekreb52lv", "4s386p3q0tr8dy89xvmt96234v3dljg8", token} {
		if strings.Contains(string(raw.Data), secret) {
			t.Errorf("secret %s reached the stream", secret)
		}
	}
	// The stored message continues the HTTP request's trace.
	tp := raw.Header.Get("traceparent")
	if tp == "" {
		t.Fatal("no traceparent header")
	}
	var serverSpan sdktrace.ReadOnlySpan
	for _, sp := range st.rec.Ended() {
		if sp.SpanKind() == trace.SpanKindServer && serverSpan == nil {
			serverSpan = sp // the first request's: the one that stored the message
		}
	}
	if serverSpan == nil || !strings.Contains(tp, serverSpan.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %s does not carry the request's trace", tp)
	}
	if serverSpan != nil && serverSpan.Name() != "POST /bitrix24/events" {
		t.Errorf("server span name %q", serverSpan.Name())
	}
}

func TestRejectionsPublishNothing(t *testing.T) {
	st := start(t)
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name, path, ct, body string
		want                 int
	}{
		{"wrong token", "/bitrix24/events", form, dealUpdate("wrong", "1"), http.StatusForbidden},
		{"unknown portal", "/bitrix24/events", form, strings.Replace(dealUpdate(token, "1"), member, "nobody", 1), http.StatusForbidden},
		{"malformed", "/bitrix24/events", form, "event=X&data[FIELDS=1", http.StatusBadRequest},
		{"no event", "/bitrix24/events", form, "auth[member_id]=" + member, http.StatusBadRequest},
		{"too large", "/bitrix24/events", form, dealUpdate(token, strings.Repeat("9", 300<<10)), http.StatusRequestEntityTooLarge},
		{"unsupported type", "/bitrix24/events", "text/plain", "hi", http.StatusUnsupportedMediaType},
		{"bad route", "/bitrix24/events/a.b", form, dealUpdate(token, "1"), http.StatusNotFound},
		{"install without verifier", "/bitrix24/events", form, strings.Replace(strings.Replace(dealUpdate("x", "1"), "ONCRMDEALUPDATE", "ONAPPINSTALL", 1), member, "newportal", 1), http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, st.base+tt.path, tt.ct, tt.body)
			if code != tt.want {
				t.Fatalf("status %d (%s), want %d", code, body, tt.want)
			}
			if code == http.StatusForbidden && !strings.Contains(body, `"forbidden"`) {
				t.Errorf("403 leaks detail: %s", body)
			}
		})
	}
	if n := streamMsgs(t, st.js); n != 0 {
		t.Fatalf("stream has %d messages after rejections", n)
	}
}

func TestInstallIsVerifiedBeforeAcceptance(t *testing.T) {
	st := start(t)
	accept, busy := true, false
	sub, err := st.nc.Subscribe(eventbus.ControlInstall, func(m *nats.Msg) {
		var req eventbus.InstallRequest
		_ = json.Unmarshal(m.Data, &req)
		rep, _ := json.Marshal(eventbus.InstallReply{Accepted: accept && !busy && strings.Contains(string(req.Body), "access_token"), Busy: busy})
		_ = m.Respond(rep)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	install := strings.Replace(strings.Replace(dealUpdate("fresh", "1"), "ONCRMDEALUPDATE", "ONAPPINSTALL", 1), member, "newportal", 1)
	form := "application/x-www-form-urlencoded"
	if code, body := post(t, st.base+"/bitrix24/events", form, install); code != http.StatusOK {
		t.Fatalf("verified install: %d %s", code, body)
	}
	accept = false
	if code, _ := post(t, st.base+"/bitrix24/events", form, strings.Replace(install, "ts=1736405807", "ts=1736405808", 1)); code != http.StatusForbidden {
		t.Fatalf("refused install: %d", code)
	}
	if n := streamMsgs(t, st.js); n != 1 {
		t.Fatalf("stream has %d messages, want 1", n)
	}

	// A reinstall of a known portal goes to the verifier too (it carries
	// new tokens to store), and a refusal is a 403 even with a valid token.
	reinstall := strings.Replace(dealUpdate(token, "1"), "ONCRMDEALUPDATE", "ONAPPINSTALL", 1)
	if code, _ := post(t, st.base+"/bitrix24/events", form, reinstall); code != http.StatusForbidden {
		t.Fatalf("refused reinstall of a known portal: %d", code)
	}
	accept = true
	if code, _ := post(t, st.base+"/bitrix24/events", form, reinstall); code != http.StatusOK {
		t.Fatalf("verified reinstall of a known portal: %d", code)
	}
	if n := streamMsgs(t, st.js); n != 2 {
		t.Fatalf("stream has %d messages, want 2", n)
	}

	// A verifier with no free slot (a flood of forged installs) is not a
	// refusal: the known portal's reinstall is accepted on its token, an
	// unknown portal's install gets 503, not 403.
	busy = true
	if code, _ := post(t, st.base+"/bitrix24/events", form, strings.Replace(reinstall, "ts=1736405807", "ts=1736405809", 1)); code != http.StatusOK {
		t.Fatalf("reinstall of a known portal while the verifier is busy: %d", code)
	}
	if code, _ := post(t, st.base+"/bitrix24/events", form, strings.Replace(install, "ts=1736405807", "ts=1736405810", 1)); code != http.StatusServiceUnavailable {
		t.Fatalf("install of an unknown portal while the verifier is busy: %d", code)
	}
}

func TestBrokerDownAnswers503AndRecovers(t *testing.T) {
	st := start(t)
	form := "application/x-www-form-urlencoded"
	st.srv.Stop()
	startAt := time.Now()
	code, _ := post(t, st.base+"/bitrix24/events", form, dealUpdate(token, "1"))
	if code != http.StatusServiceUnavailable {
		t.Fatalf("broker down: status %d, want 503", code)
	}
	// The configured publish timeout (500ms) bounds the answer; without it
	// the request would wait as long as the client does. The bound only
	// tells the two apart, so a loaded machine stays far below it.
	if d := time.Since(startAt); d > 20*time.Second {
		t.Errorf("503 took %s", d)
	}
	resp, err := http.Get(st.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz with broker down: %d", resp.StatusCode)
	}
	st.srv.Restart()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		code, _ = post(t, st.base+"/bitrix24/events", form, dealUpdate(token, "2"))
		if code == http.StatusOK || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code != http.StatusOK {
		t.Fatalf("after restart: status %d", code)
	}
}
