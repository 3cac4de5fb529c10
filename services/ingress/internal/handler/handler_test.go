package handler

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/telemetry"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

const (
	member = "a223c6b3710f85df22e9377d6c4f7553"
	token  = "51856fefc120afa4b628cc82d3935cce"
)

// recordingPublisher is a hand-written fake: it records what would be stored.
type recordingPublisher struct {
	mu   sync.Mutex
	msgs []eventbus.Message
	ctxs []context.Context // the context of each publish
	err  error
}

func (p *recordingPublisher) Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, p.err
	}
	p.msgs = append(p.msgs, m)
	p.ctxs = append(p.ctxs, ctx)
	return &jetstream.PubAck{Sequence: uint64(len(p.msgs))}, nil
}

func (p *recordingPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.msgs)
}

func newTestServer(tb testing.TB, pub Publisher) *echo.Echo {
	tb.Helper()
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		tb.Fatal(err)
	}
	h, err := New(Config{}, reg, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		tb.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	return e
}

func serve(e *echo.Echo, path, ct string, body []byte) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(string(body)))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

const form = "application/x-www-form-urlencoded"

func valid(extra string) string {
	return "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1&ts=1736405807&auth%5Bmember_id%5D=" + member +
		"&auth%5Baccess_token%5D=secret-access&auth%5Bapplication_token%5D=" + token + extra
}

func TestAnswers(t *testing.T) {
	tests := []struct {
		name, path, ct, body string
		pubErr               error
		want                 int
	}{
		{"ok form", "/bitrix24/events", form, valid(""), nil, 200},
		{"ok json", "/bitrix24/events", "application/json; charset=utf-8",
			`{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":"1"}},"ts":"1","auth":{"member_id":"` + member + `","application_token":"` + token + `"}}`, nil, 200},
		{"ok route", "/bitrix24/events/sales-1", form, valid(""), nil, 200},
		{"broker down", "/bitrix24/events", form, valid(""), eventbus.ErrNotConfirmed, 503},
		{"wrong token", "/bitrix24/events", form, strings.Replace(valid(""), token, "nope", 1), nil, 403},
		{"no token", "/bitrix24/events", form, strings.Replace(valid(""), "auth%5Bapplication_token%5D="+token, "", 1), nil, 403},
		{"empty body", "/bitrix24/events", form, "", nil, 400},
		{"bad escape", "/bitrix24/events", form, valid("&x=%zz"), nil, 400},
		{"deep", "/bitrix24/events", form, valid("&data" + strings.Repeat("%5Ba%5D", 40) + "=1"), nil, 400},
		{"event not a token", "/bitrix24/events", form, strings.Replace(valid(""), "ONCRMDEALUPDATE", "ON.CRM", 1), nil, 400},
		{"member not a token", "/bitrix24/events", form, strings.Replace(valid(""), member, "a*b", 1), nil, 400},
		{"no content type", "/bitrix24/events", "", valid(""), nil, 415},
		{"xml", "/bitrix24/events", "application/xml", "<x/>", nil, 415},
		{"broken json", "/bitrix24/events", "application/json", `{"event":`, nil, 400},
		{"too large", "/bitrix24/events", form, valid("&pad=" + strings.Repeat("a", 300<<10)), nil, 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recordingPublisher{err: tt.pubErr}
			rec := serve(newTestServer(t, pub), tt.path, tt.ct, []byte(tt.body))
			if rec.Code != tt.want {
				t.Fatalf("status %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
			if stored := pub.count(); (tt.want == 200) != (stored == 1) {
				t.Fatalf("status %d but %d messages stored", rec.Code, stored)
			}
			if tt.want == 200 {
				if strings.Contains(string(pub.msgs[0].Data), "secret-access") {
					t.Fatal("access token reached the stream")
				}
				assertNoSecretKeys(t, pub.msgs[0].Data)
			}
		})
	}
}

func TestNotConfirmedIsNeverA200(t *testing.T) {
	pub := &recordingPublisher{err: errors.New("nats: connection closed")}
	if rec := serve(newTestServer(t, pub), "/bitrix24/events", form, []byte(valid(""))); rec.Code != 503 {
		t.Fatalf("status %d", rec.Code)
	}
}

// assertNoSecretKeys decodes a stored envelope's body and fails when any
// key still names a token.
func assertNoSecretKeys(t *testing.T, data []byte) {
	t.Helper()
	var env eventsv1.Envelope
	if err := proto.Unmarshal(data, &env); err != nil {
		t.Fatalf("stored envelope does not decode: %v", err)
	}
	body, err := b24event.Decode(env.GetContentType(), env.GetBody(), b24event.DefaultLimits())
	if err != nil {
		t.Fatalf("stored body does not decode: %v", err)
	}
	for _, fld := range body.Fields {
		k := strings.ToLower(fld.Key)
		if i := strings.LastIndex(k, "["); i >= 0 {
			k = strings.TrimSuffix(k[i+1:], "]")
		}
		if strings.HasSuffix(k, "token") || k == "client_secret" {
			t.Fatalf("secret key %q stored", fld.Key)
		}
	}
}

// FuzzServeEvent (run for 90s, 612,822 execs, on 2026-11-27: clean): whatever arrives, the answer is 200 (exactly one message
// stored, no secret in it) or a 4xx (nothing stored) — never a 5xx or a panic.
func FuzzServeEvent(f *testing.F) {
	f.Add(form, []byte(valid("")))
	f.Add(form, []byte(valid("&data%5BBOT%5D%5B5%5D%5BAUTH%5D%5Baccess_token%5D=bot-secret")))
	f.Add("application/json", []byte(`{"event":"ONAPPTEST","auth":{"member_id":"`+member+`","application_token":"`+token+`"}}`))
	f.Add(form, []byte("a[[[]]]=1&&&=&%"))
	f.Add("text/plain; charset=koi8-r", []byte{0xff, 0xfe})
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		pub := &recordingPublisher{}
		rec := serve(newTestServer(t, pub), "/bitrix24/events", ct, body)
		switch {
		case rec.Code == 200:
			if pub.count() != 1 {
				t.Fatalf("200 with %d messages stored", pub.count())
			}
			assertNoSecretKeys(t, pub.msgs[0].Data)
		case rec.Code >= 400 && rec.Code < 500:
			if pub.count() != 0 {
				t.Fatalf("status %d with a message stored", rec.Code)
			}
		default:
			t.Fatalf("status %d for content type %q body %q", rec.Code, ct, body)
		}
	})
}

// discardPublisher confirms every message at once, so the benchmark
// measures the handler alone.
type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, eventbus.Message) (*jetstream.PubAck, error) {
	return &jetstream.PubAck{Stream: eventbus.StreamEvents, Sequence: 1}, nil
}

// BenchmarkServeEvent is the ingress's own CPU and allocations for one
// ~1 KiB deal update, everything on (server span, counter, decode,
// redaction, id, envelope) except the broker, with the span recorded by
// the OTel SDK (an exporter configured) and not recorded (none:
// telemetry.Setup's provider): go test -run '^$' -bench ServeEvent
// -benchmem ./services/ingress/internal/handler
func BenchmarkServeEvent(b *testing.B) {
	unrecorded, err := telemetry.Setup(context.Background(), "bench", func(string) string { return "" })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = unrecorded.Shutdown(context.Background()) })
	for _, tc := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"spans-recorded", sdktrace.NewTracerProvider()}, {"spans-unrecorded", unrecorded.TracerProvider}} {
		b.Run(tc.name, func(b *testing.B) { benchServeEvent(b, tc.tp) })
	}
}

func benchServeEvent(b *testing.B, tp trace.TracerProvider) {
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		b.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	// A budget no benchmark run exhausts: its check is measured, never a 429.
	unlimited := budget.Config{EventsPerSecond: 1e9, EventsBurst: 1 << 40, BytesPerSecond: 1e15, BytesBurst: 1 << 50}
	h, err := New(Config{TracerProvider: tp, PortalBudget: unlimited}, reg, discardPublisher{}, nil,
		slog.New(slog.NewTextHandler(io.Discard, nil)), mp.Meter(""))
	if err != nil {
		b.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	body := []byte(valid("&event_handler_id=201&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Brefresh_token%5D=" +
		strings.Repeat("r", 64) + "&auth%5Bscope%5D=" + strings.Repeat("crm%2Ctask%2C", 30)))
	req := httptest.NewRequest(http.MethodPost, "/bitrix24/events", nil)
	req.Header.Set("Content-Type", form)
	w := &nullWriter{h: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		clear(w.h)
		w.status = 0
		e.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
}

type nullWriter struct {
	h      http.Header
	status int
}

func (w *nullWriter) Header() http.Header         { return w.h }
func (w *nullWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nullWriter) WriteHeader(s int)           { w.status = s }

// TestServerSpanLinksOutsideTraceparent: the POST's server span starts a
// new trace (the request is not authenticated when the span starts), links
// to the caller's span, drops the caller's baggage, is named after the
// route template and carries the portal and event once authenticated.
func TestServerSpanLinksOutsideTraceparent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		t.Fatal(err)
	}
	pub := &recordingPublisher{}
	h, err := New(Config{TracerProvider: tp}, reg, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodPost, "/bitrix24/events/main", strings.NewReader(valid("")))
	req.Header.Set("Content-Type", form)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	req.Header.Set("baggage", "tenant=victim,role=admin")
	w := httptest.NewRecorder()
	e.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	sp := spans[0]
	if sp.SpanContext().TraceID().String() == traceID || sp.Parent().IsValid() {
		t.Errorf("span %s (parent %s) continues the outside trace; want a new root", sp.SpanContext().TraceID(), sp.Parent().SpanID())
	}
	if links := sp.Links(); len(links) != 1 || links[0].SpanContext.TraceID().String() != traceID || links[0].SpanContext.SpanID().String() != "00f067aa0ba902b7" {
		t.Errorf("links = %+v, want one link to the caller's span", links)
	}
	if n := len(pub.ctxs); n != 1 {
		t.Fatalf("%d publishes", n)
	}
	if b := baggage.FromContext(pub.ctxs[0]); b.Len() != 0 {
		t.Errorf("outside baggage reached the publish: %s", b)
	}
	if got := trace.SpanContextFromContext(pub.ctxs[0]).TraceID(); got != sp.SpanContext().TraceID() {
		t.Errorf("published under trace %s, want the server span's %s", got, sp.SpanContext().TraceID())
	}
	if sp.Name() != "POST /bitrix24/events/:route" || sp.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v", sp.Name(), sp.SpanKind())
	}
	got := map[string]string{}
	for _, a := range sp.Attributes() {
		got[string(a.Key)] = a.Value.String()
	}
	for k, v := range map[string]string{"http.route": "/bitrix24/events/:route", "url.path": "/bitrix24/events/main",
		"http.response.status_code": "200", "b24.member_id": member, "b24.event": "ONCRMDEALUPDATE"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// TestRequestsCounterSeriesAreBounded: an authenticated portal sending any
// number of made-up event names adds at most maxCountedKeys series to the
// requests counter; the rest are counted as "other", none lost.
func TestRequestsCounterSeriesAreBounded(t *testing.T) {
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	h, err := New(Config{}, reg, discardPublisher{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), mp.Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	const sent = maxCountedKeys + 300
	for i := range sent {
		body := strings.Replace(valid(""), "event=ONCRMDEALUPDATE", fmt.Sprintf("event=ONMADEUP%d", i), 1)
		req := httptest.NewRequest(http.MethodPost, "/bitrix24/events", strings.NewReader(body))
		req.Header.Set("Content-Type", form)
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			t.Fatalf("event %d: status %d %s", i, w.Code, w.Body)
		}
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var series int
	var total, other int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				continue
			}
			for _, dp := range sum.DataPoints {
				series++
				total += dp.Value
				if v, _ := dp.Attributes.Value("event"); v.AsString() == OtherEvents {
					other += dp.Value
				}
			}
		}
	}
	if series > maxCountedKeys+1 || other == 0 || total != sent {
		t.Fatalf("%d series (max %d + other), %d counted as other, %d counted of %d sent", series, maxCountedKeys, other, total, sent)
	}
	if n := h.nCounted.Load(); n > maxCountedKeys+1 {
		t.Fatalf("cache holds %d entries", n)
	}
}

// countingInstaller accepts every install and counts them.
type countingInstaller struct{ n atomic.Int32 }

func (c *countingInstaller) Install(context.Context, string, []byte) (bool, error) {
	c.n.Add(1)
	return true, nil
}

// TestInstallsFromUnknownPortalsAreBoundedPerSource: forged installs from
// one address stop reaching the verifier after a small burst (429), other
// addresses are not affected, and a known portal's reinstall is never
// limited.
func TestInstallsFromUnknownPortalsAreBoundedPerSource(t *testing.T) {
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		t.Fatal(err)
	}
	inst := &countingInstaller{}
	h, err := New(Config{}, reg, discardPublisher{}, inst, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.IPExtractor = echo.ExtractIPDirect()
	h.Register(e)
	post := func(from, body string) int {
		req := httptest.NewRequest(http.MethodPost, "/bitrix24/events", strings.NewReader(body))
		req.Header.Set("Content-Type", form)
		req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.9.%d.1", rand.IntN(250))) // ignored: not a trusted proxy
		req.RemoteAddr = from + ":40000"
		w := httptest.NewRecorder()
		e.ServeHTTP(w, req)
		return w.Code
	}
	forged := func(i int) string {
		return strings.Replace(strings.Replace(valid(""), "ONCRMDEALUPDATE", "ONAPPINSTALL", 1), member, fmt.Sprintf("%032d", i), 1)
	}
	for i := range installBurst {
		if code := post("203.0.113.7", forged(i)); code != http.StatusOK {
			t.Fatalf("install %d within the burst: %d", i, code)
		}
	}
	if code := post("203.0.113.7", forged(99)); code != http.StatusTooManyRequests {
		t.Fatalf("install past the burst: %d, want 429", code)
	}
	if got := inst.n.Load(); got != installBurst {
		t.Fatalf("%d installs reached the verifier, want %d", got, installBurst)
	}
	if code := post("198.51.100.4", forged(100)); code != http.StatusOK {
		t.Fatalf("install from another address: %d", code)
	}
	reinstall := strings.Replace(valid(""), "ONCRMDEALUPDATE", "ONAPPINSTALL", 1)
	for range 2 * installBurst {
		if code := post("203.0.113.7", reinstall); code != http.StatusOK {
			t.Fatalf("a known portal's reinstall from a limited address: %d", code)
		}
	}
}
