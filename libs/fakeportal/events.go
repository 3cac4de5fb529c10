package fakeportal

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// handler is an event subscription: an event.bind row of an app, or an
// outgoing webhook configured "in the UI" (app == nil).
type handler struct {
	id         int64
	app        *app
	event      string
	url        string
	authType   int64
	offline    bool
	connector  string
	minTimeout time.Duration // ONOFFLINEEVENT throttle (§2.5)
	appToken   string        // outgoing webhooks: their own application token
}

// firing is one change that produces events.
type firing struct {
	event     string
	data      []b24event.Field // keys relative to data, e.g. "[FIELDS][ID]"
	userID    int64            // who made the change; 0 for robots (no tokens, §3.2)
	connector string           // auth_connector of the write (§2.4)
	onlyApp   *app             // event.test, ONAPPUNINSTALL: only that app
	// install carries the tokens an install hands out, so its
	// ONAPPINSTALL push matches what InstallApp returned; nil mints fresh
	// ones.
	install *Install
}

// OutgoingWebhook is an outgoing-webhook record (§1.1): a handler URL and
// the application token shown in the UI, for a set of events.
type OutgoingWebhook struct {
	// Handler is the URL pushes go to.
	Handler string
	// ApplicationToken is generated when empty.
	ApplicationToken string
	// Events are event codes; default ONCRMDEALADD, ONCRMDEALUPDATE,
	// ONCRMDEALDELETE.
	Events []string
}

// AddOutgoingWebhook registers an outgoing webhook and returns its handler
// ID and application token. Its pushes carry an auth block without tokens
// (§3.5).
func (p *Portal) AddOutgoingWebhook(w OutgoingWebhook) (int64, string) {
	if w.ApplicationToken == "" {
		w.ApplicationToken = token()
	}
	if len(w.Events) == 0 {
		w.Events = []string{"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE"}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextHandler++
	id := p.nextHandler
	for _, ev := range w.Events {
		p.handlers = append(p.handlers, &handler{id: id, event: strings.ToUpper(ev), url: w.Handler, appToken: w.ApplicationToken})
	}
	return id, w.ApplicationToken
}

// Fire sends an arbitrary event as if the portal raised it: data keys are in
// bracket notation relative to data (e.g. "[FIELDS][ID]"), userID 0 means
// "no user" (no tokens in the auth block).
func (p *Portal) Fire(event string, data []b24event.Field, userID int64) {
	p.dispatch([]firing{{event: strings.ToUpper(event), data: data, userID: userID}})
}

// knownEvents are the events event.bind accepts; others are
// ERROR_EVENT_NOT_FOUND (§1.2).
var knownEvents = setOf(
	"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMDEALMOVETOCATEGORY",
	"ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE",
	"ONCRMLEADADD", "ONCRMLEADUPDATE", "ONCRMLEADDELETE",
	"ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE", "ONCRMCOMPANYDELETE",
	"ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE", "ONTASKCOMMENTADD",
	"ONVOXIMPLANTCALLINIT", "ONVOXIMPLANTCALLSTART", "ONVOXIMPLANTCALLEND", "ONEXTERNALCALLSTART",
	"ONAPPINSTALL", "ONAPPUPDATE", "ONAPPUNINSTALL", "ONAPPTEST", "ONOFFLINEEVENT",
)

func setOf(ss ...string) map[string]bool {
	m := make(map[string]bool, len(ss))
	for _, s := range ss {
		m[s] = true
	}
	return m
}

func eventBind(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType // event.bind needs application auth (§1.2)
	}
	ev := strings.ToUpper(c.params.str("event"))
	if ev == "" {
		return nil, nil, errf(400, "ERROR_ARGUMENT", "Argument 'event' is null or empty")
	}
	if !knownEvents[ev] {
		return nil, nil, errf(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
	}
	h := &handler{app: c.who.app, event: ev}
	if strings.EqualFold(c.params.str("event_type"), "offline") {
		if ev == "ONOFFLINEEVENT" {
			return nil, nil, errf(400, "ERROR_EVENT_NOT_FOUND", "Offline event cannot be registered for this event")
		}
		h.offline, h.connector = true, c.params.str("auth_connector")
	} else {
		h.url = c.params.str("handler")
		u, err := url.Parse(h.url)
		switch {
		case h.url == "":
			return nil, nil, errf(400, "ERROR_ARGUMENT", "Argument 'handler' is null or empty")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https"):
			return nil, nil, errf(400, "ERROR_UNSUPPORTED_PROTOCOL", "Unsupported event handler protocol")
		case !strings.Contains(u.Hostname(), "."):
			return nil, nil, errf(400, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL")
		case len(h.url) > 255:
			return nil, nil, errf(400, "ERROR_CORE", "Unable to set event handler: handler URL longer than 255 characters")
		}
		h.authType, _ = c.params.int64("auth_type")
		if opts, ok := c.params.obj("options"); ok && ev == "ONOFFLINEEVENT" {
			if n, ok := opts.int64("minTimeout"); ok {
				h.minTimeout = time.Duration(n) * time.Second
			}
		} else if ev == "ONOFFLINEEVENT" {
			h.minTimeout = time.Second
		}
	}
	for _, x := range p.handlers {
		if x.app == h.app && x.event == h.event && x.url == h.url && x.authType == h.authType && x.connector == h.connector && x.offline == h.offline {
			// Bind is not idempotent (§1.2).
			return nil, nil, errf(400, "ERROR_CORE", "Unable to set event handler: Handler already binded")
		}
	}
	p.nextHandler++
	h.id = p.nextHandler
	p.handlers = append(p.handlers, h)
	return true, nil, nil
}

func eventGet(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	out := []any{}
	for _, h := range p.handlers {
		if h.app != c.who.app {
			continue
		}
		if h.offline {
			out = append(out, map[string]any{"event": h.event, "connector_id": h.connector, "offline": 1})
		} else {
			out = append(out, map[string]any{"event": h.event, "handler": h.url, "auth_type": strconv.FormatInt(h.authType, 10), "offline": 0})
		}
	}
	return out, nil, nil
}

func eventUnbind(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	ev := strings.ToUpper(c.params.str("event"))
	if ev == "" {
		return nil, nil, errf(400, "ERROR_ARGUMENT", "Argument 'event' is null or empty")
	}
	offline := strings.EqualFold(c.params.str("event_type"), "offline")
	hurl := c.params.str("handler")
	if !offline && hurl == "" {
		return nil, nil, errf(400, "ERROR_ARGUMENT", "Argument 'handler' is null or empty")
	}
	authType, withAuthType := c.params.int64("auth_type")
	kept, n := p.handlers[:0], 0
	for _, h := range p.handlers {
		match := h.app == c.who.app && h.event == ev && h.offline == offline &&
			(offline || h.url == hurl) && (!withAuthType || h.authType == authType)
		if match {
			n++
			continue
		}
		kept = append(kept, h)
	}
	p.handlers = kept
	return map[string]any{"count": n}, nil, nil
}

// eventTest fires ONAPPTEST with the call's parameters under data[QUERY]
// (§1.5).
func eventTest(_ *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	q := map[string]any(c.params)
	raw, _ := json.Marshal(q)
	fields, _ := b24event.FormFromJSON(raw)
	data := make([]b24event.Field, 0, len(fields)+1)
	for _, f := range fields {
		key := f.Key
		if i := strings.IndexByte(key, '['); i >= 0 {
			key = "[QUERY][" + key[:i] + "]" + key[i:]
		} else {
			key = "[QUERY][" + key + "]"
		}
		data = append(data, b24event.Field{Key: key, Value: f.Value})
	}
	data = append(data, b24event.Field{Key: "[LANGUAGE_ID]", Value: "en"})
	c.fire = append(c.fire, firing{event: "ONAPPTEST", data: data, userID: c.who.userID, onlyApp: c.who.app})
	return true, nil, nil
}

// Delivery is one event push, sent or dropped.
type Delivery struct {
	// Seq numbers pushes from 1 in the order they were generated.
	Seq int64
	// Event, HandlerID (event_handler_id) and URL say what went where.
	Event     string
	HandlerID int64  // see Event
	URL       string // see Event
	// Body is the form-encoded POST body.
	Body []byte
	// At is the portal-clock time the push was generated (its ts).
	At time.Time
	// Dropped pushes were never sent (Faults.DropRate).
	Dropped bool
	// Status and Duration are the handler's answer; Err a transport error.
	Status   int
	Duration time.Duration // see Status
	Err      string        // see Status
}

// HandlerStat summarizes pushes to one handler URL: the record Bitrix24
// keeps to de-prioritize slow handlers (§3.4).
type HandlerStat struct {
	// Sent got a 2xx, Failed did not (or no answer), Dropped were never
	// sent, Slow took longer than Config.SlowHandler.
	Sent, Failed, Dropped, Slow int
	// MaxDuration and TotalDuration are the handler's response times.
	MaxDuration, TotalDuration time.Duration
}

type delivery struct {
	seq   int64
	event string
	url   string
	body  []byte
}

// sendRefreshToken lists the events whose auth carries refresh_token (§3.2).
var sendRefreshToken = map[string]bool{"ONAPPINSTALL": true, "ONOFFLINEEVENT": true}

// dispatch turns firings into pushes and offline records.
func (p *Portal) dispatch(fs []firing) {
	if len(fs) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dispatchLocked(fs)
}

// dispatchLocked is dispatch for callers holding p.mu, e.g. to queue an
// event before the handlers it goes to are dropped.
func (p *Portal) dispatchLocked(fs []firing) {
	if p.closed {
		return
	}
	now := p.cfg.Clock.Now()
	notified := map[int64]bool{}
	for _, f := range fs {
		for _, h := range p.handlers {
			if h.event != f.event || (h.app != nil && h.app.NotInstalled) {
				continue
			}
			if f.onlyApp != nil && h.app != f.onlyApp {
				continue
			}
			if h.offline {
				if f.connector != "" && f.connector == h.connector {
					continue // the app's own write (§2.4)
				}
				p.enqueueOffline(h, f, now)
				p.notifyOffline(h.app, now, notified)
				continue
			}
			p.push1(h, f, now)
		}
	}
}

// push1 queues one POST (or records it as dropped). Caller holds p.mu.
func (p *Portal) push1(h *handler, f firing, now time.Time) {
	body := b24event.EncodeForm(p.eventFields(h, f, now))
	p.stats.EventsFired++
	seq := int64(len(p.deliveries) + 1)
	d := Delivery{Seq: seq, Event: f.event, HandlerID: h.id, URL: h.url, Body: body, At: now}
	if p.faults.DropRate > 0 && p.rng.Float64() < p.faults.DropRate {
		d.Dropped = true
		p.stats.PushesDropped++
		p.stat(h.url).Dropped++
		p.deliveries = append(p.deliveries, d)
		return
	}
	p.deliveries = append(p.deliveries, d)
	p.inflight.Add(1)
	p.pending = append(p.pending, delivery{seq: seq, event: f.event, url: h.url, body: body})
	p.wake.Signal()
}

func (p *Portal) stat(u string) *HandlerStat {
	s := p.handlerStat[u]
	if s == nil {
		s = &HandlerStat{}
		p.handlerStat[u] = s
	}
	return s
}

// eventFields builds the POST body in the order of real captures (§3.2):
// event, event_handler_id, data[…], ts, auth[…]. A push that is not for an
// event.bind row (an app's install handler, h.id 0) has no
// event_handler_id, like the documented ONAPPINSTALL. Caller holds p.mu.
func (p *Portal) eventFields(h *handler, f firing, now time.Time) []b24event.Field {
	out := make([]b24event.Field, 0, 8+len(f.data)+12)
	out = append(out, b24event.Field{Key: "event", Value: f.event})
	if h.id != 0 {
		out = append(out, b24event.Field{Key: "event_handler_id", Value: strconv.FormatInt(h.id, 10)})
	}
	for _, d := range f.data {
		out = append(out, b24event.Field{Key: "data" + d.Key, Value: d.Value})
	}
	out = append(out, b24event.Field{Key: "ts", Value: strconv.FormatInt(now.Unix(), 10)})
	auth := func(k, v string) { out = append(out, b24event.Field{Key: "auth[" + k + "]", Value: v}) }
	clientEndpoint := "http://" + p.domain + "/rest/"
	serverEndpoint := p.base + "/rest/"
	if h.app == nil {
		// Outgoing webhook: no tokens, in the documented order (§3.5).
		auth("domain", p.domain)
		auth("client_endpoint", clientEndpoint)
		auth("server_endpoint", serverEndpoint)
		auth("member_id", p.cfg.MemberID)
		auth("application_token", h.appToken)
		return out
	}
	a := h.app
	if f.event == "ONAPPUNINSTALL" {
		// No tokens, only the portal and the application token, in the
		// documented order (§3.3, §3.6).
		auth("domain", p.domain)
		auth("server_endpoint", serverEndpoint)
		auth("client_endpoint", clientEndpoint)
		auth("member_id", p.cfg.MemberID)
		auth("application_token", a.ApplicationToken)
		return out
	}
	user := f.userID
	if h.authType != 0 {
		user = h.authType
	}
	var at, rt, expires, expiresIn string
	if user != 0 {
		exp := now.Add(p.cfg.TokenTTL)
		if in := f.install; in != nil {
			at, rt, exp = in.AccessToken, in.RefreshToken, in.Expires
		} else {
			at = token()
			p.access[at] = &grant{app: a, userID: user, expires: exp}
			if sendRefreshToken[f.event] {
				rt = token()
				p.refresh[rt] = &grant{app: a, userID: user}
			}
		}
		expires, expiresIn = strconv.FormatInt(exp.Unix(), 10), strconv.Itoa(int(p.cfg.TokenTTL.Seconds()))
	}
	if f.event == "ONAPPINSTALL" {
		// The documented example's order (domain and scope first, the
		// refresh token after the access token), with the keys real
		// captures add (expires, user_id) where those put them (§3.3, §8).
		auth("domain", p.domain)
		auth("scope", a.Scope)
		if user != 0 {
			auth("access_token", at)
			auth("refresh_token", rt)
			auth("expires", expires)
			auth("expires_in", expiresIn)
		}
		auth("server_endpoint", serverEndpoint)
		auth("status", a.Status)
		auth("client_endpoint", clientEndpoint)
		auth("member_id", p.cfg.MemberID)
		if user != 0 {
			auth("user_id", strconv.FormatInt(user, 10))
		}
		auth("application_token", a.ApplicationToken)
		return out
	}
	if user != 0 {
		auth("access_token", at)
		auth("expires", expires)
		auth("expires_in", expiresIn)
	}
	auth("scope", a.Scope)
	auth("domain", p.domain)
	auth("server_endpoint", serverEndpoint)
	auth("status", a.Status)
	auth("client_endpoint", clientEndpoint)
	auth("member_id", p.cfg.MemberID)
	if user != 0 {
		auth("user_id", strconv.FormatInt(user, 10))
		if rt != "" {
			auth("refresh_token", rt)
		}
	}
	auth("application_token", a.ApplicationToken)
	return out
}

// deliverLoop is one sender of the portal's "queue server" (§3.1).
func (p *Portal) deliverLoop() {
	defer p.workers.Done()
	for {
		p.mu.Lock()
		for len(p.pending) == 0 && !p.closed {
			p.wake.Wait()
		}
		if p.closed {
			n := len(p.pending)
			p.pending = nil
			p.mu.Unlock()
			for range n {
				p.inflight.Done()
			}
			return
		}
		d := p.pending[0]
		p.pending = p.pending[1:]
		p.mu.Unlock()
		p.send(d)
	}
}

func (p *Portal) send(d delivery) {
	defer p.inflight.Done()
	start := time.Now()
	status, errText := 0, ""
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, d.url, bytes.NewReader(d.body))
	if err == nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		// Seen for Bitrix24's outbound robot callbacks (§3.1, unconfirmed
		// for events).
		req.Header.Set("User-Agent", "Bitrix24 Webhook Engine")
		var resp *http.Response
		resp, err = p.push.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			status = resp.StatusCode
		}
	}
	if err != nil {
		errText = err.Error()
	}
	dur := time.Since(start)
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := int(d.seq - 1); i < len(p.deliveries) {
		p.deliveries[i].Status, p.deliveries[i].Duration, p.deliveries[i].Err = status, dur, errText
	}
	s := p.stat(d.url)
	s.TotalDuration += dur
	s.MaxDuration = max(s.MaxDuration, dur)
	if dur > p.cfg.SlowHandler {
		s.Slow++
	}
	if err != nil || status < 200 || status > 299 {
		// Bitrix24 logs the failure and never resends (§3.4).
		s.Failed++
		p.stats.PushesFailed++
		p.cfg.Logger.Warn("fakeportal: push failed", "event", d.event, "url", d.url, "status", status, "err", errText)
		return
	}
	s.Sent++
	p.stats.PushesSent++
}

// Drain waits until every queued push has been attempted, or ctx ends.
func (p *Portal) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Deliveries returns every push so far, in order.
func (p *Portal) Deliveries() []Delivery {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Delivery(nil), p.deliveries...)
}

// HandlerStats returns push statistics per handler URL.
func (p *Portal) HandlerStats() map[string]HandlerStat {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]HandlerStat, len(p.handlerStat))
	for k, v := range p.handlerStat {
		out[k] = *v
	}
	return out
}

// Bindings lists event.bind rows and outgoing webhooks as "EVENT handler"
// strings (offline ones as "EVENT offline:connector"), sorted.
func (p *Portal) Bindings() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, h := range p.handlers {
		if h.offline {
			out = append(out, h.event+" offline:"+h.connector)
		} else {
			out = append(out, h.event+" "+h.url)
		}
	}
	sort.Strings(out)
	return out
}
