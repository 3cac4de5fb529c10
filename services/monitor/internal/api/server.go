// Package api serves the monitor's JSON API under /api/v1 and the embedded
// dashboard with echo. Every route but the sign-in form requires the API
// token (bearer) or the session cookie the sign-in sets.
package api

import (
	"context"
	"encoding/base64"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/audit"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
	"github.com/b24hub/b24hub/services/monitor/internal/replay"
	"github.com/b24hub/b24hub/services/monitor/internal/web"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/labstack/echo/v4"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config wires a Server. Every field but TraceURLTemplate, Auditor and Now is required.
type Config struct {
	Ledger   *ledger.Store
	Alerts   *alert.Store
	Rules    alert.Rules
	Replayer *replay.Replayer
	// Auditor answers GET /api/v1/audit; nil answers 503.
	Auditor *audit.Auditor
	Auth    *Auth
	// TraceURLTemplate builds trace links; "{trace_id}" is replaced.
	TraceURLTemplate string
	// Watched reports whether a portal is live (registered, not
	// uninstalled): the health view evaluates silence and probe rules for
	// those only, as the alert evaluator does. Nil watches every portal.
	Watched func(memberID string) bool
	// Now is the clock for health and stats; default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Server is the HTTP API and dashboard.
type Server struct {
	cfg Config
	e   *echo.Echo
}

// New builds the routes.
func New(cfg Config) *Server {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, e: echo.New()}
	e := s.e
	e.HideBanner, e.HidePort = true, true
	// Failed sign-ins are counted per peer address; a header cannot pick it.
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = s.errorHandler
	e.Use(routePattern)

	e.GET("/", s.dashboard)
	e.POST("/login", s.login)
	e.POST("/logout", s.logout)
	e.GET("/static/*", echo.WrapHandler(http.StripPrefix("/static/", http.FileServerFS(web.Assets()))), cfg.Auth.Middleware)

	g := e.Group("/api/v1", cfg.Auth.Middleware)
	g.POST("/sessions/revoke", s.revokeSessions, cfg.Auth.Bearer)
	g.GET("/events", s.searchEvents)
	g.GET("/events/:id", s.getEvent)
	g.GET("/deliveries", s.deliveries)
	g.GET("/dead-letters", s.deadLetters)
	g.GET("/portals", s.portals)
	g.GET("/portals/:portal", s.portal)
	g.GET("/alerts", s.alerts)
	g.GET("/alerts/rules", s.rules)
	g.GET("/stats", s.stats)
	g.GET("/audit", s.auditRun)
	g.POST("/replay", s.replay)
	return s
}

// Handler returns the root handler.
func (s *Server) Handler() http.Handler { return s.e }

// routePattern exposes echo's route template as Request.Pattern so otelhttp
// names spans by route, not by raw path (ecosystem.md 1.3).
func routePattern(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Request().Pattern = c.Path()
		trace.SpanFromContext(c.Request().Context()).SetAttributes(semconv.HTTPRoute(c.Path()))
		return next(c)
	}
}

func (s *Server) errorHandler(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code, msg := http.StatusInternalServerError, "internal error"
	var he *echo.HTTPError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &he):
		code = he.Code
		if m, ok := he.Message.(string); ok {
			msg = m
		} else {
			msg = http.StatusText(code)
		}
	case errors.Is(err, ledger.ErrNotFound):
		code, msg = http.StatusNotFound, "not found"
	case errors.Is(err, ledger.ErrBadCursor):
		code, msg = http.StatusBadRequest, "bad cursor"
	case errors.Is(err, replay.ErrNotReplayable):
		code, msg = http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, replay.ErrDestinationReplay):
		// The destinations service or the destination's endpoint failed.
		code, msg = http.StatusBadGateway, err.Error()
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) || (!errors.As(err, &pgErr) && isConnErr(err)):
		code, msg = http.StatusServiceUnavailable, "ledger unavailable"
	}
	if code >= 500 {
		s.cfg.Log.ErrorContext(c.Request().Context(), "monitor api error", "path", c.Path(), "error", err)
	}
	_ = c.JSON(code, map[string]string{"error": msg})
}

func isConnErr(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce) || strings.Contains(err.Error(), "connect")
}

// --- dashboard and sign-in ---

func (s *Server) secure(c echo.Context) bool { return c.Request().TLS != nil || c.Scheme() == "https" }

func (s *Server) dashboard(c echo.Context) error {
	if t := c.QueryParam("token"); t != "" {
		// A link with ?token= signs in once; the redirect drops the token
		// from the address bar and history.
		return s.signIn(c, t)
	}
	switch s.cfg.Auth.check(c.Request()) {
	case bearer, cookie:
	case unavailable:
		return c.HTMLBlob(http.StatusServiceUnavailable, web.LoginPage("Sessions are unavailable (the ledger database does not answer); retry shortly."))
	default:
		return c.HTMLBlob(http.StatusUnauthorized, web.LoginPage(""))
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	page, err := fs.ReadFile(web.Assets(), "index.html")
	if err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, page)
}

func (s *Server) login(c echo.Context) error { return s.signIn(c, c.FormValue("token")) }

// signIn exchanges the token for a session cookie and redirects to a clean
// URL. Failed attempts are limited per client address.
func (s *Server) signIn(c echo.Context, token string) error {
	if s.cfg.Auth.Limited(c.RealIP()) {
		return c.HTMLBlob(http.StatusTooManyRequests, web.LoginPage("Too many failed sign-ins from this address; wait a minute."))
	}
	if !s.cfg.Auth.Token(token) {
		s.cfg.Auth.Failed(c.RealIP())
		return c.HTMLBlob(http.StatusUnauthorized, web.LoginPage("Wrong token."))
	}
	ck, err := s.cfg.Auth.NewSession(c.Request().Context(), s.secure(c))
	if err != nil {
		s.cfg.Log.ErrorContext(c.Request().Context(), "monitor: session not created", "error", err)
		return c.HTMLBlob(http.StatusServiceUnavailable, web.LoginPage("Sessions are unavailable (the ledger database does not answer); retry shortly."))
	}
	c.SetCookie(ck)
	return c.Redirect(http.StatusSeeOther, "/")
}

func (s *Server) logout(c echo.Context) error {
	ck, err := s.cfg.Auth.EndSession(c.Request(), s.secure(c))
	if err != nil {
		s.cfg.Log.WarnContext(c.Request().Context(), "monitor: session not revoked on sign-out", "error", err)
	}
	c.SetCookie(ck)
	return c.Redirect(http.StatusSeeOther, "/")
}

// revokeSessions ends every dashboard session (bearer token only), e.g.
// after a laptop was lost, without rotating the API token.
func (s *Server) revokeSessions(c echo.Context) error {
	n, err := s.cfg.Auth.sessions.RevokeAll(c.Request().Context())
	if err != nil {
		return err
	}
	s.cfg.Log.InfoContext(c.Request().Context(), "monitor: every dashboard session revoked", "sessions", n)
	return c.JSON(http.StatusOK, map[string]int64{"revoked": n})
}

// --- query parsing ---

func badRequest(msg string) error { return echo.NewHTTPError(http.StatusBadRequest, msg) }

func parseTime(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, badRequest(name + " must be RFC 3339: " + v)
	}
	return t, nil
}

func parseLimit(q url.Values) (int, error) {
	v := q.Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 1000 {
		return 0, badRequest("limit must be 1..1000")
	}
	return n, nil
}

var validStatus = map[string]bool{ledger.StatusReceived: true, ledger.StatusPending: true, ledger.StatusDone: true,
	ledger.StatusError: true, ledger.StatusDead: true, ledger.StatusSkipped: true}

// EventQuery is the JSON form of an event filter (used by bulk replay);
// the query parameters of GET /api/v1/events have the same names.
type EventQuery struct {
	Portal   string    `json:"portal"`
	Type     string    `json:"type"`
	Status   string    `json:"status"`
	Source   string    `json:"source"`
	Entity   string    `json:"entity"`
	Consumer string    `json:"consumer"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
}

func (q EventQuery) filter() (ledger.EventFilter, error) {
	if q.Status != "" && !validStatus[q.Status] {
		return ledger.EventFilter{}, badRequest("unknown status: " + q.Status)
	}
	return ledger.EventFilter{Portal: q.Portal, EventType: q.Type, Status: q.Status, Source: q.Source, EntityID: q.Entity,
		Consumer: q.Consumer, From: q.From, To: q.To}, nil
}

func eventFilter(q url.Values) (ledger.EventFilter, error) {
	from, err := parseTime(q, "from")
	if err != nil {
		return ledger.EventFilter{}, err
	}
	to, err := parseTime(q, "to")
	if err != nil {
		return ledger.EventFilter{}, err
	}
	f, err := EventQuery{Portal: q.Get("portal"), Type: q.Get("type"), Status: q.Get("status"), Source: q.Get("source"),
		Entity: q.Get("entity"), Consumer: q.Get("consumer"), From: from, To: to}.filter()
	if err != nil {
		return f, err
	}
	f.Cursor = q.Get("cursor")
	f.Limit, err = parseLimit(q)
	return f, err
}

// DeadLetterQuery is the JSON form of a dead-letter filter; the query
// parameters of GET /api/v1/dead-letters have the same names.
type DeadLetterQuery struct {
	Consumer string    `json:"consumer"`
	Portal   string    `json:"portal"`
	Type     string    `json:"type"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
}

func (q DeadLetterQuery) filter() ledger.DeliveryFilter {
	return ledger.DeliveryFilter{Consumer: q.Consumer, Portal: q.Portal, EventType: q.Type, From: q.From, To: q.To}
}

func deliveryFilter(q url.Values) (ledger.DeliveryFilter, error) {
	from, err := parseTime(q, "from")
	if err != nil {
		return ledger.DeliveryFilter{}, err
	}
	to, err := parseTime(q, "to")
	if err != nil {
		return ledger.DeliveryFilter{}, err
	}
	f := DeadLetterQuery{Consumer: q.Get("consumer"), Portal: q.Get("portal"), Type: q.Get("type"), From: from, To: to}.filter()
	if st := q.Get("status"); st != "" {
		for _, s := range strings.Split(st, ",") {
			if !validStatus[s] || s == ledger.StatusReceived {
				return f, badRequest("unknown delivery status: " + s)
			}
			f.Statuses = append(f.Statuses, s)
		}
	}
	f.Limit, err = parseLimit(q)
	return f, err
}

// --- handlers ---

func (s *Server) searchEvents(c echo.Context) error {
	f, err := eventFilter(c.QueryParams())
	if err != nil {
		return err
	}
	page, err := s.cfg.Ledger.SearchEvents(c.Request().Context(), f)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, page)
}

// EventDetail is the body of GET /api/v1/events/:id.
type EventDetail struct {
	Event         ledger.Event      `json:"event"`
	Payload       string            `json:"payload,omitempty"`
	PayloadBase64 string            `json:"payload_base64,omitempty"`
	Deliveries    []ledger.Delivery `json:"deliveries"`
	Replays       []ledger.Replay   `json:"replays"`
	TraceID       string            `json:"trace_id"`
	TraceURL      string            `json:"trace_url,omitempty"`
}

func (s *Server) getEvent(c echo.Context) error {
	ctx := c.Request().Context()
	e, err := s.cfg.Ledger.GetEvent(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	d := EventDetail{Event: e, TraceID: e.TraceID}
	if utf8.Valid(e.Payload) {
		d.Payload = string(e.Payload)
	} else {
		d.PayloadBase64 = base64.StdEncoding.EncodeToString(e.Payload)
	}
	if d.Deliveries, err = s.cfg.Ledger.Deliveries(ctx, e.ID); err != nil {
		return err
	}
	if d.Replays, err = s.cfg.Ledger.Replays(ctx, e.ID, ""); err != nil {
		return err
	}
	if d.Deliveries == nil {
		d.Deliveries = []ledger.Delivery{}
	}
	if d.Replays == nil {
		d.Replays = []ledger.Replay{}
	}
	if s.cfg.TraceURLTemplate != "" && e.TraceID != "" {
		d.TraceURL = strings.ReplaceAll(s.cfg.TraceURLTemplate, "{trace_id}", url.PathEscape(e.TraceID))
	}
	return c.JSON(http.StatusOK, d)
}

func (s *Server) deliveries(c echo.Context) error {
	f, err := deliveryFilter(c.QueryParams())
	if err != nil {
		return err
	}
	ds, err := s.cfg.Ledger.FindDeliveries(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []ledger.Delivery{}
	}
	return c.JSON(http.StatusOK, map[string]any{"deliveries": ds})
}

func (s *Server) deadLetters(c echo.Context) error {
	f, err := deliveryFilter(c.QueryParams())
	if err != nil {
		return err
	}
	ds, err := s.cfg.Ledger.DeadLetters(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []ledger.DeadLetterRow{}
	}
	return c.JSON(http.StatusOK, map[string]any{"dead_letters": ds})
}

// PortalHealth is one portal's entry in GET /api/v1/portals.
type PortalHealth struct {
	Portal string `json:"portal"`
	Domain string `json:"domain"`
	// Watched is false for a portal the ledger remembers but the registry
	// no longer holds (uninstalled or removed): no rule watches it.
	Watched     bool              `json:"watched"`
	LastEventAt time.Time         `json:"last_event_at"`
	Events      []ledger.LastSeen `json:"events"`
	Silence     []SilenceStatus   `json:"silence"`
	Alerts      []alert.Alert     `json:"alerts"`
}

// SilenceStatus is a silence or probe rule's view of one portal now.
type SilenceStatus struct {
	Rule      string  `json:"rule"`
	Kind      string  `json:"kind"`
	EventType string  `json:"event_type"`
	Firing    bool    `json:"firing"`
	QuietSecs float64 `json:"quiet_seconds"`
	Message   string  `json:"message"`
}

func (s *Server) health(ctx context.Context) ([]PortalHealth, error) {
	seen, err := s.cfg.Ledger.LastSeen(ctx)
	if err != nil {
		return nil, err
	}
	firing, err := s.cfg.Alerts.List(ctx, true, 0)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var out []PortalHealth
	idx := map[string]int{}
	for _, l := range seen {
		i, ok := idx[l.Portal]
		if !ok {
			i = len(out)
			idx[l.Portal] = i
			out = append(out, PortalHealth{Portal: l.Portal, Watched: s.cfg.Watched == nil || s.cfg.Watched(l.Portal),
				Silence: []SilenceStatus{}, Alerts: []alert.Alert{}})
		}
		p := &out[i]
		p.Events = append(p.Events, l)
		if l.LastReceivedAt.After(p.LastEventAt) {
			p.LastEventAt, p.Domain = l.LastReceivedAt, l.Domain
		}
	}
	events := map[string]string{}
	for _, r := range s.cfg.Rules.Rules {
		events[r.Name] = r.Event
	}
	quiet := alert.Rules{Calendars: s.cfg.Rules.Calendars}
	for _, r := range s.cfg.Rules.Rules {
		if r.Kind == alert.KindSilence || r.Kind == alert.KindProbe {
			quiet.Rules = append(quiet.Rules, r)
		}
	}
	for _, o := range alert.Evaluate(quiet, alert.Input{Now: now, Since: now, LastSeen: seen, Watched: s.cfg.Watched}) {
		if i, ok := idx[o.Target]; ok {
			out[i].Silence = append(out[i].Silence, SilenceStatus{Rule: o.Rule, Kind: o.Kind, EventType: events[o.Rule],
				Firing: o.Firing, QuietSecs: o.Value, Message: o.Message})
		}
	}
	for _, a := range firing {
		if i, ok := idx[a.Target]; ok {
			out[i].Alerts = append(out[i].Alerts, a)
		}
	}
	if out == nil {
		out = []PortalHealth{}
	}
	return out, nil
}

func (s *Server) portals(c echo.Context) error {
	h, err := s.health(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"portals": h})
}

func (s *Server) portal(c echo.Context) error {
	h, err := s.health(c.Request().Context())
	if err != nil {
		return err
	}
	for _, p := range h {
		if p.Portal == c.Param("portal") {
			return c.JSON(http.StatusOK, p)
		}
	}
	return ledger.ErrNotFound
}

func (s *Server) alerts(c echo.Context) error {
	q := c.QueryParams()
	limit, err := parseLimit(q)
	if err != nil {
		return err
	}
	state := q.Get("state")
	if state != "" && state != "firing" && state != "all" {
		return badRequest("state must be firing or all")
	}
	as, err := s.cfg.Alerts.List(c.Request().Context(), state == "firing", limit)
	if err != nil {
		return err
	}
	if as == nil {
		as = []alert.Alert{}
	}
	return c.JSON(http.StatusOK, map[string]any{"alerts": as})
}

func (s *Server) rules(c echo.Context) error {
	return c.JSON(http.StatusOK, s.cfg.Rules)
}

// Stats is the body of GET /api/v1/stats.
type Stats struct {
	From          time.Time                `json:"from"`
	To            time.Time                `json:"to"`
	BucketSeconds int                      `json:"bucket_seconds"`
	Throughput    []ledger.ThroughputPoint `json:"throughput"`
	Outcomes      []ledger.OutcomeCount    `json:"outcomes"`
	Sources       []ledger.SourceCount     `json:"sources"`
}

func (s *Server) stats(c echo.Context) error {
	q := c.QueryParams()
	window, bucket := time.Hour, 5*time.Minute
	var err error
	if v := q.Get("window"); v != "" {
		if window, err = time.ParseDuration(v); err != nil || window <= 0 || window > 31*24*time.Hour {
			return badRequest("window must be a duration up to 744h")
		}
	}
	if v := q.Get("bucket"); v != "" {
		if bucket, err = time.ParseDuration(v); err != nil || bucket < time.Minute {
			return badRequest("bucket must be a duration of at least 1m")
		}
	}
	if window/bucket > 1000 {
		return badRequest("at most 1000 buckets")
	}
	to := s.cfg.Now().UTC().Truncate(bucket).Add(bucket)
	from := to.Add(-window)
	ctx := c.Request().Context()
	st := Stats{From: from, To: to, BucketSeconds: int(bucket / time.Second)}
	if st.Throughput, err = s.cfg.Ledger.Throughput(ctx, from, to, bucket, q.Get("portal")); err != nil {
		return err
	}
	if st.Outcomes, err = s.cfg.Ledger.OutcomeCounts(ctx, from, to); err != nil {
		return err
	}
	if st.Sources, err = s.cfg.Ledger.SourceCounts(ctx, from, to); err != nil {
		return err
	}
	if st.Throughput == nil {
		st.Throughput = []ledger.ThroughputPoint{}
	}
	if st.Outcomes == nil {
		st.Outcomes = []ledger.OutcomeCount{}
	}
	if st.Sources == nil {
		st.Sources = []ledger.SourceCount{}
	}
	return c.JSON(http.StatusOK, st)
}

// ReplayRequest is the body of POST /api/v1/replay. Exactly one of EventID,
// DeadLetters and Events is set.
type ReplayRequest struct {
	// EventID replays one event.
	EventID string `json:"event_id"`
	// Consumer, with EventID, tracks the replay at that consumer (replaying
	// its dead letter).
	Consumer string `json:"consumer"`
	// DeadLetters replays every dead letter matching the filter.
	DeadLetters *DeadLetterQuery `json:"dead_letters"`
	// Events replays every event matching the filter.
	Events *EventQuery `json:"events"`
	// Limit bounds a bulk replay (default and maximum: the configured maximum).
	Limit int `json:"limit"`
	// Force replays dead letters whose last replay is pending or done too.
	Force bool `json:"force"`
	// DryRun publishes nothing: the answer (200, a replay.Plan) says how
	// many events, and which, the same request would replay.
	DryRun bool `json:"dry_run"`
}

func (s *Server) replay(c echo.Context) error {
	var req ReplayRequest
	if err := c.Bind(&req); err != nil {
		return badRequest("body must be a JSON replay request")
	}
	set := 0
	for _, b := range []bool{req.EventID != "", req.DeadLetters != nil, req.Events != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return badRequest("set exactly one of event_id, dead_letters, events")
	}
	ctx := c.Request().Context()
	if req.DryRun {
		return s.replayDryRun(c, req)
	}
	var (
		res replay.Result
		err error
	)
	switch {
	case req.EventID != "":
		var r ledger.Replay
		if r, err = s.cfg.Replayer.One(ctx, req.EventID, req.Consumer); err != nil {
			return err
		}
		res.Replayed = []ledger.Replay{r}
	case req.DeadLetters != nil:
		res, err = s.cfg.Replayer.DeadLetters(ctx, req.DeadLetters.filter(), req.Limit, req.Force)
	default:
		var f ledger.EventFilter
		if f, err = req.Events.filter(); err != nil {
			return err
		}
		res, err = s.cfg.Replayer.Events(ctx, f, req.Limit)
	}
	if err != nil {
		return err
	}
	if res.Replayed == nil {
		res.Replayed = []ledger.Replay{}
	}
	s.cfg.Log.InfoContext(ctx, "monitor replay", "replayed", len(res.Replayed), "failed", len(res.Failed), "skipped", len(res.Skipped), "refused", len(res.Refused))
	return c.JSON(http.StatusAccepted, res)
}

// replayDryRun answers a replay request with dry_run set: what it would
// replay, from the same selection a real replay executes.
func (s *Server) replayDryRun(c echo.Context, req ReplayRequest) error {
	ctx := c.Request().Context()
	var (
		p   replay.Plan
		err error
	)
	switch {
	case req.EventID != "":
		p, err = s.cfg.Replayer.PlanOne(ctx, req.EventID, req.Consumer)
	case req.DeadLetters != nil:
		p, err = s.cfg.Replayer.PlanDeadLetters(ctx, req.DeadLetters.filter(), req.Limit, req.Force)
	default:
		var f ledger.EventFilter
		if f, err = req.Events.filter(); err != nil {
			return err
		}
		p, err = s.cfg.Replayer.PlanEvents(ctx, f, req.Limit)
	}
	if err != nil {
		return err
	}
	p.DryRun = true
	return c.JSON(http.StatusOK, p)
}
