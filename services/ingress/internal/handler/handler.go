// Package handler is the ingress hot path: it turns one Bitrix24 POST into
// one durable JetStream message and answers 200 only after JetStream
// confirmed it. It does no database or REST work.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/b24hub/b24hub/libs/svcmain/keyrate"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Publisher stores a message durably; *eventbus.Publisher implements it.
// Publish must bound its own wait (eventbus.WithConfirmTimeout): the
// handler gives it a context that a client hanging up does not cancel,
// and no deadline.
type Publisher interface {
	Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error)
}

// Authenticator finds the active portal whose application token matches;
// *portals.Registry implements it.
type Authenticator interface {
	Authenticate(memberID, token string) (portals.Portal, bool)
}

// Installer verifies and registers an ONAPPINSTALL from a portal not known
// yet. It returns (false, nil) when the install was refused.
type Installer interface {
	Install(ctx context.Context, contentType string, body []byte) (bool, error)
}

// Config tunes the handler.
type Config struct {
	// Limits bound the body decoder; MaxBodyBytes is also the 413 threshold.
	Limits b24event.Limits
	// InstallTimeout bounds the verification of an ONAPPINSTALL (default
	// 2 s). Publishing is bounded by the Publisher.
	InstallTimeout time.Duration
	// TracerProvider makes the server span of each POST; default: the
	// global one.
	TracerProvider trace.TracerProvider
	// PortalBudget bounds the events and bytes each authenticated portal
	// may store (package budget); over it the answer is 429. Zero fields
	// take budget.DefaultConfig's.
	PortalBudget budget.Config
}

// Handler serves POST /bitrix24/events[/:route].
type Handler struct {
	cfg       Config
	auth      Authenticator
	pub       Publisher
	installer Installer        // optional
	installs  *keyrate.Limiter // install verifications per client address
	budgets   *budget.Budgets  // events and bytes stored per portal
	log       *slog.Logger
	now       func() time.Time
	tracer    trace.Tracer

	requests metric.Int64Counter
	// counted caches the attribute set of each (status, event) pair:
	// building an attribute.Set per request (sorting, hashing, allocating)
	// cost more than the counter itself. Both parts are bounded: a status
	// is one of a handful, and at most maxCountedKeys pairs are kept, past
	// which an event name is counted as "other" — an authenticated portal
	// may still send any number of made-up event names, and each would be
	// a new series in every scrape and a cache entry never freed.
	counted  sync.Map     // countKey → metric.AddOption
	nCounted atomic.Int64 // entries in counted
	scratch  sync.Pool    // *scratch
}

// scratch holds the per-request buffers: the body as read, its redacted
// form and the encoded message. None of them outlives the request (the
// NATS client copies a message into its write buffer when it is
// published), so they are reused instead of allocated per POST. attrs
// holds the server span's attributes until SetAttributes has copied them:
// an array passed to an interface method escapes, so a local one would be
// a heap allocation per request.
type scratch struct {
	body, redacted []byte
	message        eventbus.RawEventBuffer
	attrs          [7]attribute.KeyValue
}

// maxPooled bounds the buffers kept for reuse: an occasional large event
// must not pin its memory in the pool.
const maxPooled = 64 << 10

func (h *Handler) getScratch() *scratch { return h.scratch.Get().(*scratch) }

func (h *Handler) putScratch(s *scratch) {
	if cap(s.body) > maxPooled || cap(s.redacted) > maxPooled || s.message.Cap() > maxPooled {
		return
	}
	s.attrs = [len(s.attrs)]attribute.KeyValue{} // no member id kept alive by the pool
	s.message.Reset()
	h.scratch.Put(s)
}

type countKey struct {
	status int
	event  string
}

// New returns a Handler. installer may be nil: then installs from unknown
// portals are refused with 403.
func New(cfg Config, auth Authenticator, pub Publisher, installer Installer, log *slog.Logger, meter metric.Meter) (*Handler, error) {
	if cfg.Limits.MaxBodyBytes == 0 {
		cfg.Limits.MaxBodyBytes = b24event.DefaultLimits().MaxBodyBytes
	}
	if cfg.InstallTimeout <= 0 {
		cfg.InstallTimeout = 2 * time.Second
	}
	requests, err := meter.Int64Counter("ingress.requests",
		metric.WithDescription("Event POSTs by HTTP status and event name"), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	cfg.PortalBudget = withBudgetDefaults(cfg.PortalBudget)
	if err := cfg.PortalBudget.Validate(cfg.Limits.MaxBodyBytes); err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, auth: auth, pub: pub, installer: installer, log: log, now: time.Now, requests: requests,
		installs: keyrate.New(installEvery, installBurst, installSources),
		budgets:  budget.New(cfg.PortalBudget),
		tracer:   cfg.TracerProvider.Tracer("github.com/b24hub/b24hub/services/ingress")}
	if err := h.observeBudgets(meter); err != nil {
		return nil, err
	}
	h.scratch.New = func() any {
		return &scratch{body: make([]byte, 0, 4096), redacted: make([]byte, 0, 4096)}
	}
	return h, nil
}

// Budgets is the per-portal budget this handler spends, for other routes
// that store the same portals' events (the on-premise route) to share.
func (h *Handler) Budgets() *budget.Budgets { return h.budgets }

// The event routes, as echo templates.
const (
	pathEvents      = "/bitrix24/events"
	pathEventsRoute = "/bitrix24/events/:route"
)

// Register mounts the event routes on e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST(pathEvents, h.ServeEvent)
	e.POST(pathEventsRoute, h.ServeEvent)
}

type answer struct {
	status int
	reason string
	event  string
}

// ServeEvent handles one POST. Every non-200 answer publishes nothing.
//
// It makes the request's server span itself, named after the route
// template ("POST /bitrix24/events/:route"), never the raw URL. The span
// starts a new trace: the request is not authenticated yet, so an incoming
// W3C traceparent becomes a link, never the parent (a caller cannot pick
// our trace ids or force sampling), and incoming baggage is dropped (it
// would otherwise ride into every consumer's context and outgoing call). A middleware would have to
// clone the request to carry the span's context, and otelhttp also records
// several HTTP histograms per request, which cost more CPU than decoding
// the event; the ingress.requests counter covers what they would tell.
func (h *Handler) ServeEvent(c echo.Context) error {
	r := c.Request()
	ctx, span := h.tracer.Start(r.Context(), spanName(r.Method, c.Path()), h.spanOptions(r.Header)...)
	defer span.End()
	sc := h.getScratch()
	defer h.putScratch(sc)
	// Not cancelled when the client hangs up: an event already on its way
	// to JetStream gets its real outcome (in the counter and the span), not
	// a 503 nobody reads. The Publisher bounds the wait; a deadline here
	// would cost a timer and a context per request.
	ev, id, a := h.accept(context.WithoutCancel(ctx), c, sc)
	h.requests.Add(ctx, 1, h.countOption(a))

	if span.IsRecording() { // not when nothing exports spans (telemetry.Setup)
		attrs := append(sc.attrs[:0],
			semconv.HTTPRequestMethodKey.String(r.Method),
			semconv.HTTPRoute(c.Path()),
			semconv.URLPath(r.URL.Path),
			attribute.Int64("http.request.body.size", r.ContentLength),
			semconv.HTTPResponseStatusCode(a.status),
		)
		if ev != nil {
			attrs = append(attrs, attribute.String("b24.member_id", ev.MemberID), attribute.String("b24.event", ev.Name))
		}
		span.SetAttributes(attrs...)
	}

	body := []byte(`{"status":"accepted","id":"` + id + `"}`)
	if a.status != http.StatusOK {
		if a.status >= 500 {
			span.SetStatus(codes.Error, a.reason)
			h.log.WarnContext(ctx, "event not accepted", "status", a.status, "reason", a.reason, "event", a.event)
		}
		body = errorJSON(a.reason)
	}
	// Written directly rather than through c.JSONBlob, which canonicalises
	// and allocates the header on every call.
	w := c.Response()
	w.Header()[echo.HeaderContentType] = jsonContentType
	w.WriteHeader(a.status)
	_, err := w.Write(body)
	return err
}

// spanOptions starts the server span as a new root, linked to the caller's
// span when the request carries a valid traceparent. Only the trace-context
// propagator reads the headers, so baggage never enters the context.
func (h *Handler) spanOptions(hdr http.Header) []trace.SpanStartOption {
	if len(hdr["Traceparent"]) == 0 {
		return serverRoot
	}
	remote := trace.SpanContextFromContext(traceContext.Extract(context.Background(), traceHeaders(hdr)))
	if !remote.IsValid() {
		return serverRoot
	}
	return append(serverRoot[:len(serverRoot):len(serverRoot)], trace.WithLinks(trace.Link{SpanContext: remote}))
}

// serverRoot are the span options of every request without a traceparent
// (everything Bitrix24 sends), shared so they cost no allocation.
var serverRoot = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer), trace.WithNewRoot()}

// traceContext reads a W3C traceparent (and tracestate), nothing else.
var traceContext propagation.TraceContext

// traceHeaders lets the propagators read an HTTP request's trace headers.
// They ask by lower-case name; propagation.HeaderCarrier would
// canonicalise (and allocate) the name on every lookup.
type traceHeaders http.Header

func (c traceHeaders) Get(key string) string {
	var vs []string
	switch key {
	case "traceparent":
		vs = c["Traceparent"]
	case "tracestate":
		vs = c["Tracestate"]
	case "baggage":
		vs = c["Baggage"]
	default:
		return http.Header(c).Get(key)
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

func (c traceHeaders) Set(key, value string) { http.Header(c).Set(key, value) }

func (c traceHeaders) Keys() []string { return propagation.HeaderCarrier(c).Keys() }

// spanName names a server span after the route template ("POST
// /bitrix24/events/:route"), without building the string per request for
// the routes Register mounts.
func spanName(method, route string) string {
	if method == http.MethodPost {
		switch route {
		case pathEvents:
			return http.MethodPost + " " + pathEvents
		case pathEventsRoute:
			return http.MethodPost + " " + pathEventsRoute
		}
	}
	return method + " " + route
}

// jsonContentType is shared by every answer; net/http only reads it.
var jsonContentType = []string{echo.MIMEApplicationJSON}

// countOption returns the counter attributes of an answer, built once per
// (status, event).
func (h *Handler) countOption(a answer) metric.AddOption {
	k := countKey{a.status, a.event}
	if o, ok := h.counted.Load(k); ok {
		return o.(metric.AddOption)
	}
	if h.nCounted.Load() >= maxCountedKeys {
		k.event = OtherEvents
		if o, ok := h.counted.Load(k); ok {
			return o.(metric.AddOption)
		}
	}
	o, loaded := h.counted.LoadOrStore(k, metric.WithAttributeSet(attribute.NewSet(attribute.Int("code", k.status), attribute.String("event", k.event))))
	if !loaded {
		h.nCounted.Add(1)
	}
	return o.(metric.AddOption)
}

// Install-verification budget per client address for portals not known
// yet: real installs are rare (one per portal and application), so a burst
// of 5 then one every 10 seconds is plenty; at most 10,000 addresses are
// remembered.
const (
	installBurst   = 5
	installEvery   = 10 * time.Second
	installSources = 10_000
)

// maxCountedKeys bounds the (status, event) series of the requests counter.
// Bitrix24 documents a few hundred events; a portal uses a few dozen.
const maxCountedKeys = 512

// OtherEvents is the event label of requests counted after the counter
// reached maxCountedKeys series.
const OtherEvents = "other"

// accept runs the steps of one POST and returns the authenticated event
// (nil when it got that far), the message id and the answer.
func (h *Handler) accept(ctx context.Context, c echo.Context, sc *scratch) (*b24event.Event, string, answer) {
	r := c.Request()
	route := c.Param("route")
	if route != "" && !eventbus.ValidToken(route) {
		return nil, "", answer{status: http.StatusNotFound, reason: "unknown route", event: "unknown"}
	}
	ct := r.Header.Get(echo.HeaderContentType)
	if !supported(ct) {
		return nil, "", answer{status: http.StatusUnsupportedMediaType,
			reason: "content type must be application/x-www-form-urlencoded or application/json", event: "unknown"}
	}
	body, err := readLimited(r.Body, sc.body[:0], h.cfg.Limits.MaxBodyBytes)
	sc.body = body[:0]
	if err != nil {
		if errors.Is(err, b24event.ErrBodyTooLarge) {
			return nil, "", answer{status: http.StatusRequestEntityTooLarge, reason: "body too large", event: "unknown"}
		}
		return nil, "", answer{status: http.StatusBadRequest, reason: "cannot read body", event: "unknown"}
	}
	decoded, err := b24event.DecodeDelivery(ct, body, h.cfg.Limits)
	if err != nil {
		switch {
		case errors.Is(err, b24event.ErrBodyTooLarge):
			return nil, "", answer{status: http.StatusRequestEntityTooLarge, reason: "body too large", event: "unknown"}
		case errors.Is(err, b24event.ErrUnsupportedContentType):
			return nil, "", answer{status: http.StatusUnsupportedMediaType, reason: err.Error(), event: "unknown"}
		}
		return nil, "", answer{status: http.StatusBadRequest, reason: err.Error(), event: "unknown"}
	}
	ev := decoded.Event
	portal, ok := h.auth.Authenticate(ev.MemberID, ev.ApplicationToken)
	if ev.Name == "ONAPPINSTALL" && h.installer != nil && !ok && !h.installs.Allow(c.RealIP()) {
		// A portal we do not know yet: bounded per source address, so a
		// flood of forged installs is refused here, before it reaches the
		// verifier. A known portal's reinstall is never limited.
		return nil, "", answer{status: http.StatusTooManyRequests, reason: "too many installs from this address, retry later", event: "unknown"}
	}
	if ev.Name == "ONAPPINSTALL" && h.installer != nil {
		// Every install goes to the verifier, a reinstall of a known portal
		// too: it carries new OAuth tokens that must be stored. A known
		// portal whose token matched is still accepted when the verifier is
		// unavailable, so its event is not lost.
		ictx, cancel := context.WithTimeout(ctx, h.cfg.InstallTimeout)
		accepted, err := h.installer.Install(ictx, ct, body)
		cancel()
		switch {
		case err != nil && !ok:
			return nil, "", answer{status: http.StatusServiceUnavailable, reason: "install verification unavailable", event: "unknown"}
		case err != nil:
			h.log.WarnContext(ctx, "install verification unavailable; reinstall accepted on its application token", "member_id", ev.MemberID, "error", err)
		default:
			ok = accepted
		}
		if ok && portal.MemberID == "" {
			portal = portals.Portal{MemberID: ev.MemberID, Domain: ev.Domain}
		}
	}
	if !ok {
		// No detail: an attacker must not learn whether the portal exists.
		return nil, "", answer{status: http.StatusForbidden, reason: "forbidden", event: "unknown"}
	}

	// After authentication, so only a real portal's events spend (and
	// create) a budget; before any further work, so a flood costs little.
	// The body's length stands for the stored size: the message adds a
	// bounded envelope and redaction only shortens it.
	if err := h.budgets.Admit(ev.MemberID, len(body), h.now()); err != nil {
		return ev, "", answer{status: http.StatusTooManyRequests, reason: err.Error() + ", retry later", event: ev.Name}
	}

	id := decoded.MessageID
	sc.redacted = decoded.AppendRedacted(sc.redacted[:0])
	env := eventbus.Push{Event: ev, MessageID: id, ContentType: decoded.ContentType, Body: sc.redacted,
		Domain: portal.Domain, Route: route, ReceivedAt: h.now()}.Envelope()
	msg, err := eventbus.RawEventMessage(env, &sc.message)
	if err != nil {
		return ev, "", answer{status: http.StatusBadRequest, reason: "cannot encode event", event: ev.Name}
	}
	_, err = h.pub.Publish(ctx, msg)
	if err != nil {
		return ev, "", answer{status: http.StatusServiceUnavailable, reason: "event store unavailable, retry later", event: ev.Name}
	}
	return ev, id, answer{status: http.StatusOK, event: ev.Name}
}

func supported(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/x-www-form-urlencoded" || mt == "application/json"
}

// readLimited reads r into buf, failing with ErrBodyTooLarge past limit
// bytes without reading much further.
func readLimited(r io.Reader, buf []byte, limit int) ([]byte, error) {
	lr := io.LimitReader(r, int64(limit)+1)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := lr.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if len(buf) > limit {
			return buf, b24event.ErrBodyTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

func errorJSON(reason string) []byte {
	b, _ := json.Marshal(map[string]string{"error": reason})
	return b
}
