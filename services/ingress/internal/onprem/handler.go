package onprem

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Path is the route the forwarder module POSTs deliveries to.
const Path = "/onprem/v1/events"

// DefaultWindow is how far a delivery's timestamp may be from the ingress
// clock: wide enough for an NTP-synchronised server and a slow request,
// narrow enough that a captured request is useless soon after.
const DefaultWindow = 5 * time.Minute

// Publisher stores a message durably and bounds its own wait;
// *eventbus.Publisher implements it (as for the REST route).
type Publisher interface {
	Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error)
}

// Installations finds an active on-premise installation by id;
// *portals.Registry implements it.
type Installations interface {
	Installation(id string) (portals.Portal, bool)
}

// Config tunes the handler.
type Config struct {
	// MaxBodyBytes is the largest accepted delivery; larger gets 413 and the
	// module halves its batch. Required.
	MaxBodyBytes int
	// Window is the accepted timestamp skew. Default DefaultWindow.
	Window time.Duration
	// TracerProvider makes the server span; default: the global one.
	TracerProvider trace.TracerProvider
	// Budgets, when set, is the per-portal budget the REST route spends
	// too (docs/security.md, "Tenant isolation"): an installation over it
	// gets its events refused from there on; the module keeps them in its
	// spool and sends them again, so nothing is lost.
	Budgets *budget.Budgets
}

// Handler serves POST /onprem/v1/events.
type Handler struct {
	cfg      Config
	inst     Installations
	pub      Publisher
	log      *slog.Logger
	now      func() time.Time
	tracer   trace.Tracer
	requests metric.Int64Counter
}

// New returns a Handler.
func New(cfg Config, inst Installations, pub Publisher, log *slog.Logger, meter metric.Meter) (*Handler, error) {
	if inst == nil || pub == nil || log == nil || cfg.MaxBodyBytes <= 0 {
		return nil, errors.New("onprem: installations, publisher, logger and MaxBodyBytes are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.TracerProvider == nil {
		cfg.TracerProvider = otel.GetTracerProvider()
	}
	requests, err := meter.Int64Counter("ingress.onprem.requests",
		metric.WithDescription("On-premise deliveries by HTTP status and reason"), metric.WithUnit("{request}"))
	if err != nil {
		return nil, err
	}
	return &Handler{cfg: cfg, inst: inst, pub: pub, log: log, now: time.Now, requests: requests,
		tracer: cfg.TracerProvider.Tracer("github.com/b24hub/b24hub/services/ingress/onprem")}, nil
}

// Register mounts the route on e.
func (h *Handler) Register(e *echo.Echo) { e.POST(Path, h.Serve) }

// Answer is the JSON body of every response. Acked lists, in order, the
// ids of the events that are stored (a duplicate of a stored event
// included); the module deletes exactly these from its spool. Error says
// why the rest were not.
type Answer struct {
	Acked []string `json:"acked"`
	Error string   `json:"error,omitempty"`
}

// Serve handles one delivery. Nothing is published unless the installation
// is known, the signature matches, the timestamp is fresh and the whole
// body is well formed; then the events are published one after another in
// their order and the answer acknowledges the stored prefix.
func (h *Handler) Serve(c echo.Context) error {
	r := c.Request()
	ctx, span := h.tracer.Start(r.Context(), "POST "+Path, trace.WithSpanKind(trace.SpanKindServer))
	defer span.End()
	// As on the REST route: an event on its way to JetStream gets its real
	// outcome even when the module hangs up.
	status, ans, installation := h.accept(context.WithoutCancel(ctx), r)
	span.SetAttributes(attribute.Int("http.response.status_code", status), attribute.String("b24.installation", installation),
		attribute.Int("b24.acked", len(ans.Acked)))
	reason := "ok"
	if status != http.StatusOK || ans.Error != "" {
		reason = reasonLabel(ans.Error)
		h.log.WarnContext(ctx, "on-premise delivery not fully accepted", "status", status, "installation", installation,
			"acked", len(ans.Acked), "reason", ans.Error)
		if status >= 500 {
			span.SetStatus(codes.Error, ans.Error)
		}
	}
	h.requests.Add(ctx, 1, metric.WithAttributes(attribute.Int("code", status), attribute.String("reason", reason)))
	if ans.Acked == nil {
		ans.Acked = []string{}
	}
	return c.JSON(status, ans)
}

func (h *Handler) accept(ctx context.Context, r *http.Request) (int, Answer, string) {
	if mt, _, _ := strings.Cut(r.Header.Get(echo.HeaderContentType), ";"); !strings.EqualFold(strings.TrimSpace(mt), echo.MIMEApplicationJSON) {
		return http.StatusUnsupportedMediaType, Answer{Error: "content type must be application/json"}, ""
	}
	id := r.Header.Get(HeaderInstallation)
	if id == "" {
		return http.StatusBadRequest, Answer{Error: "missing " + HeaderInstallation + " header"}, ""
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, int64(h.cfg.MaxBodyBytes)+1))
	if err != nil {
		return http.StatusBadRequest, Answer{Error: "cannot read body"}, ""
	}
	if len(body) > h.cfg.MaxBodyBytes {
		return http.StatusRequestEntityTooLarge, Answer{Error: "body too large: send fewer events per delivery"}, ""
	}
	inst, ok := h.inst.Installation(id)
	if !ok {
		// Installation ids are not secrets (they are in every subject); the
		// administrator needs to know which setting is wrong.
		return http.StatusForbidden, Answer{Error: "unknown installation"}, ""
	}
	if err := Verify(inst.SigningSecret, r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderSignature), body, h.now(), h.cfg.Window); err != nil {
		if errors.Is(err, ErrBadTimestamp) {
			return http.StatusBadRequest, Answer{Error: err.Error()}, id
		}
		return http.StatusUnauthorized, Answer{Error: err.Error()}, id
	}
	d, err := ParseDelivery(body)
	if err != nil {
		return http.StatusBadRequest, Answer{Error: err.Error()}, id
	}
	if d.Installation != id {
		return http.StatusBadRequest, Answer{Error: "malformed body: installation differs from the " + HeaderInstallation + " header"}, id
	}
	ans := Answer{Acked: make([]string, 0, len(d.Events))}
	received := h.now()
	for _, ev := range d.Events {
		// In order, each waiting for its PubAck: the stream keeps the
		// spool's order, and a failure leaves an unacknowledged tail the
		// module sends again, never a gap.
		if h.cfg.Budgets != nil {
			if err := h.cfg.Budgets.Admit(inst.MemberID, len(ev.Raw), h.now()); err != nil {
				ans.Error = err.Error() + ", retry later"
				if len(ans.Acked) == 0 {
					return http.StatusTooManyRequests, ans, id
				}
				return http.StatusOK, ans, id
			}
		}
		if err := h.publish(ctx, inst, ev, received); err != nil {
			ans.Error = "event store unavailable, retry later"
			if len(ans.Acked) == 0 {
				return http.StatusServiceUnavailable, ans, id
			}
			return http.StatusOK, ans, id
		}
		ans.Acked = append(ans.Acked, ev.ID)
	}
	return http.StatusOK, ans, id
}

func (h *Handler) publish(ctx context.Context, inst portals.Portal, ev Event, received time.Time) error {
	msgID := MessageID(inst.MemberID, ev.ID)
	body, err := Redact(ev.Raw)
	if err != nil { // ParseDelivery already decoded it
		return err
	}
	env := &eventsv1.Envelope{
		MessageId:   msgID,
		MemberId:    inst.MemberID,
		Domain:      inst.Domain,
		Event:       ev.Subject(),
		EventTs:     timestamppb.New(ev.Time),
		ReceivedAt:  timestamppb.New(received),
		Source:      eventsv1.Source_SOURCE_ONPREM,
		ContentType: echo.MIMEApplicationJSON,
		Body:        body,
		EntityId:    ev.EntityID,
	}
	m, err := eventbus.RawEventMessage(env, nil)
	if err != nil {
		return err
	}
	_, err = h.pub.Publish(ctx, m)
	if err != nil {
		h.log.WarnContext(ctx, "on-premise event not stored", "installation", inst.MemberID, "event", ev.Subject(), "event_id", ev.ID, "error", err)
	}
	return err
}

// msgIDVersion prefixes the hash input; see MessageID.
const msgIDVersion = "b24hub/onprem/msgid/v1\x00"

// MessageID derives the Nats-Msg-Id of an on-premise event from the
// installation id and the module's event id: a re-send from the spool gets
// the same id and is de-duplicated, and because the installation is part of
// the input one installation cannot suppress another's events by reusing
// its ids. Like b24event.MessageID it is 32 hex characters.
func MessageID(installation, eventID string) string {
	sum := sha256.Sum256([]byte(msgIDVersion + installation + "\x00" + eventID))
	return hex.EncodeToString(sum[:16])
}

// reasonLabel turns an error answer into a bounded metric label.
func reasonLabel(msg string) string {
	for _, known := range []string{"unknown installation", "bad signature", "stale timestamp", "malformed timestamp",
		"malformed body", "body too large", "content type", "missing", "event store unavailable"} {
		if strings.HasPrefix(msg, known) {
			return known
		}
	}
	return "other"
}
