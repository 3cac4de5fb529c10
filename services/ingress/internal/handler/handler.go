// Package handler is the ingress hot path: it turns one Bitrix24 POST into
// one durable JetStream message and answers 200 only after JetStream
// confirmed it. It does no database or REST work.
package handler

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Publisher stores a message durably; *eventbus.Publisher implements it.
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
	// PublishTimeout bounds the whole request: past it the answer is 503.
	PublishTimeout time.Duration
}

// Handler serves POST /bitrix24/events[/:route].
type Handler struct {
	cfg       Config
	auth      Authenticator
	pub       Publisher
	installer Installer // optional
	log       *slog.Logger
	now       func() time.Time

	requests metric.Int64Counter
	bufs     sync.Pool
}

// New returns a Handler. installer may be nil: then installs from unknown
// portals are refused with 403.
func New(cfg Config, auth Authenticator, pub Publisher, installer Installer, log *slog.Logger, meter metric.Meter) (*Handler, error) {
	if cfg.Limits.MaxBodyBytes == 0 {
		cfg.Limits.MaxBodyBytes = b24event.DefaultLimits().MaxBodyBytes
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 2 * time.Second
	}
	requests, err := meter.Int64Counter("ingress.requests",
		metric.WithDescription("Event POSTs by HTTP status and event name"), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	h := &Handler{cfg: cfg, auth: auth, pub: pub, installer: installer, log: log, now: time.Now, requests: requests}
	h.bufs.New = func() any { b := make([]byte, 0, 4096); return &b }
	return h, nil
}

// Register mounts the event routes on e.
func (h *Handler) Register(e *echo.Echo) {
	e.POST("/bitrix24/events", h.ServeEvent)
	e.POST("/bitrix24/events/:route", h.ServeEvent)
}

type answer struct {
	status int
	reason string
	event  string
}

// ServeEvent handles one POST. Every non-200 answer publishes nothing.
func (h *Handler) ServeEvent(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), h.cfg.PublishTimeout)
	defer cancel()
	id, a := h.accept(ctx, c)
	h.requests.Add(ctx, 1, metric.WithAttributes(attribute.Int("code", a.status), attribute.String("event", a.event)))
	if a.status != http.StatusOK {
		if a.status >= 500 {
			h.log.WarnContext(ctx, "event not accepted", "status", a.status, "reason", a.reason, "event", a.event)
		}
		return c.JSONBlob(a.status, errorJSON(a.reason))
	}
	return c.JSONBlob(http.StatusOK, []byte(`{"status":"accepted","id":"`+id+`"}`))
}

func (h *Handler) accept(ctx context.Context, c echo.Context) (string, answer) {
	r := c.Request()
	route := c.Param("route")
	if route != "" && !eventbus.ValidToken(route) {
		return "", answer{status: http.StatusNotFound, reason: "unknown route", event: "unknown"}
	}
	ct := r.Header.Get(echo.HeaderContentType)
	if !supported(ct) {
		return "", answer{status: http.StatusUnsupportedMediaType,
			reason: "content type must be application/x-www-form-urlencoded or application/json", event: "unknown"}
	}
	bp := h.bufs.Get().(*[]byte)
	defer h.bufs.Put(bp)
	body, err := readLimited(r.Body, (*bp)[:0], h.cfg.Limits.MaxBodyBytes)
	*bp = body[:0]
	if err != nil {
		if errors.Is(err, b24event.ErrBodyTooLarge) {
			return "", answer{status: http.StatusRequestEntityTooLarge, reason: "body too large", event: "unknown"}
		}
		return "", answer{status: http.StatusBadRequest, reason: "cannot read body", event: "unknown"}
	}
	decoded, err := b24event.Decode(ct, body, h.cfg.Limits)
	if err != nil {
		switch {
		case errors.Is(err, b24event.ErrBodyTooLarge):
			return "", answer{status: http.StatusRequestEntityTooLarge, reason: "body too large", event: "unknown"}
		case errors.Is(err, b24event.ErrUnsupportedContentType):
			return "", answer{status: http.StatusUnsupportedMediaType, reason: err.Error(), event: "unknown"}
		}
		return "", answer{status: http.StatusBadRequest, reason: err.Error(), event: "unknown"}
	}
	ev, err := decoded.Event()
	if err != nil {
		return "", answer{status: http.StatusBadRequest, reason: err.Error(), event: "unknown"}
	}
	portal, ok := h.auth.Authenticate(ev.MemberID, ev.ApplicationToken)
	if ev.Name == "ONAPPINSTALL" && h.installer != nil {
		// Every install goes to the verifier, a reinstall of a known portal
		// too: it carries new OAuth tokens that must be stored. A known
		// portal whose token matched is still accepted when the verifier is
		// unavailable, so its event is not lost.
		accepted, err := h.installer.Install(ctx, ct, body)
		switch {
		case err != nil && !ok:
			return "", answer{status: http.StatusServiceUnavailable, reason: "install verification unavailable", event: "unknown"}
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
		return "", answer{status: http.StatusForbidden, reason: "forbidden", event: "unknown"}
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("b24.member_id", ev.MemberID), attribute.String("b24.event", ev.Name))

	id := b24event.MessageID(ev)
	now := h.now()
	env := &eventsv1.Envelope{
		MessageId:      id,
		MemberId:       ev.MemberID,
		Domain:         firstNonEmpty(ev.Domain, portal.Domain),
		Event:          ev.Name,
		HandlerId:      ev.HandlerID,
		ReceivedAt:     timestamppb.New(now),
		Source:         eventsv1.Source_SOURCE_PUSH,
		ContentType:    decoded.ContentType,
		Body:           decoded.Redacted(),
		EntityId:       ev.EntityID,
		Route:          route,
		ClientEndpoint: ev.ClientEndpoint,
	}
	if !ev.TS.IsZero() {
		env.EventTs = timestamppb.New(ev.TS)
	}
	data, err := proto.Marshal(env)
	if err != nil {
		return "", answer{status: http.StatusBadRequest, reason: "cannot encode event", event: ev.Name}
	}
	hdr := nats.Header{}
	hdr.Set(eventbus.HeaderSource, eventbus.SourcePush)
	hdr.Set(eventbus.HeaderContentType, eventbus.ContentTypeProtobuf)
	if ev.EntityID != "" {
		hdr.Set(eventbus.HeaderEntityID, ev.EntityID)
	}
	_, err = h.pub.Publish(ctx, eventbus.Message{
		Subject: eventbus.RawEvent(ev.MemberID, ev.Name), MsgID: id, Data: data, Header: hdr,
	})
	if err != nil {
		return "", answer{status: http.StatusServiceUnavailable, reason: "event store unavailable, retry later", event: ev.Name}
	}
	return id, answer{status: http.StatusOK, event: ev.Name}
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

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
