package bitrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Client calls one portal's REST API. It is safe for concurrent use; create
// one per portal and keep it.
type Client struct {
	cfg      Config
	portal   string // limiter and telemetry key (member_id)
	http     *http.Client
	limiter  Limiter
	clock    Clock
	log      *slog.Logger
	tel      *telemetry
	oauth    *oauthAuth // nil for webhooks
	onRename func(ctx context.Context, oldDomain, newDomain string)
	ops      *operationPauses
	hosts    *allowlist.List // where redirects may lead (nil: cloud domains)

	mu      sync.RWMutex
	webhook *url.URL // current webhook base; nil for OAuth
}

// New builds a Client. It fails only on an invalid Config or telemetry setup;
// the portal is not contacted.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if o.clock == nil {
		o.clock = SystemClock{}
	}
	if o.log == nil {
		o.log = slog.Default()
	}
	if o.limiter == nil {
		o.limiter = NewLocalLimiter(DefaultMargin, o.clock)
	}
	hc := &http.Client{Timeout: cfg.RequestTimeout}
	if o.http != nil {
		cp := *o.http
		hc = &cp
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	tel, err := newTelemetry(o.tp, o.mp)
	if err != nil {
		return nil, fmt.Errorf("bitrix: telemetry: %w", err)
	}
	c := &Client{
		cfg: cfg, http: hc, limiter: o.limiter, clock: o.clock, log: o.log, tel: tel,
		onRename: o.onRename, ops: newOperationPauses(), hosts: o.hosts,
	}
	if cfg.WebhookURL != "" {
		u, _ := url.Parse(cfg.WebhookURL)
		if !strings.HasSuffix(u.Path, "/") {
			u.Path += "/"
		}
		c.webhook = u
		c.portal = cfg.MemberID
		if c.portal == "" {
			c.portal = u.Host
		}
	} else {
		c.oauth = newOAuthAuth(*cfg.OAuth, hc, o.clock, o.log, tel)
		c.portal = cfg.MemberID
	}
	return c, nil
}

// Portal returns the key the client limits and reports under (the
// member_id, or the webhook host when none was configured).
func (c *Client) Portal() string { return c.portal }

// Domain returns the portal host the client currently calls; it changes
// after a rename (302).
func (c *Client) Domain(ctx context.Context) (string, error) {
	base, _, err := c.endpoint(ctx)
	if err != nil {
		return "", err
	}
	return base.Host, nil
}

// Call invokes method with params (anything encoding/json accepts, usually
// a map or struct; nil for none) and decodes "result" into out (nil to
// discard). See Do for the retry rules.
func (c *Client) Call(ctx context.Context, method string, params, out any, opts ...CallOption) error {
	resp, err := c.Do(ctx, method, params, opts...)
	if err != nil {
		return err
	}
	if out == nil || len(resp.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(resp.Result, out); err != nil {
		if resp.IsEmptyResult() {
			// "result": [] where an object was expected: Bitrix24's way of
			// saying "not found" (§5.3).
			return &Error{Status: http.StatusOK, Method: method, Portal: c.portal, Description: "empty result", kind: KindNotFound}
		}
		return &Error{Status: http.StatusOK, Method: method, Portal: c.portal, Description: "decode result: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return nil
}

// Do invokes method and returns the whole answer. It waits for the rate
// limiter before every attempt and:
//   - retries QUERY_LIMIT_EXCEEDED with exponential backoff and jitter for up
//     to Config.QueryLimitMaxElapsed (it is rejected before execution, §4.5);
//   - on OPERATION_TIME_LIMIT pauses the method for this portal until
//     operating_reset_at (§4.6) and fails fast unless MaxOperationWait allows
//     waiting;
//   - never retries OVERLOAD_LIMIT (KindOverload);
//   - with OAuth, refreshes on expired_token/invalid_token (§4.2): once, or
//     twice when the first refresh found a newer but also expired token
//     stored by another client;
//   - retries transient failures of reads up to Config.MaxRetries times; a
//     write that failed ambiguously is returned with Error.Ambiguous set;
//   - follows a 302 by re-POSTing the same body (§4.1).
//
// Every failure is an *Error.
func (c *Client) Do(ctx context.Context, method string, params any, opts ...CallOption) (*Response, error) {
	var co callOptions
	for _, o := range opts {
		o(&co)
	}
	body := []byte("{}")
	if params != nil {
		b, err := json.Marshal(params)
		if err != nil {
			return nil, &Error{Method: method, Portal: c.portal, Description: "encode params: " + err.Error(), Err: err, kind: KindPermanent}
		}
		body = b
	}
	idempotent := isRead(method)
	if co.idempotent != nil {
		idempotent = *co.idempotent
	}
	return c.do(ctx, method, body, idempotent)
}

func (c *Client) do(ctx context.Context, method string, body []byte, idempotent bool) (resp *Response, err error) {
	began := c.clock.Now()
	ctx, span := c.tel.start(ctx, method, c.portal)
	status := 0
	defer func() { c.tel.finish(ctx, span, method, c.portal, status, began, c.clock.Now(), err) }()

	qlBackoff := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(time.Duration(float64(time.Second)/c.cfg.Rate.PerSecond)),
		backoff.WithMultiplier(1.5), backoff.WithRandomizationFactor(0.5),
		backoff.WithMaxInterval(15*time.Second), backoff.WithMaxElapsedTime(c.cfg.QueryLimitMaxElapsed))
	qlBackoff.Clock = c.clock
	qlBackoff.Reset()
	transient := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(500*time.Millisecond), backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(0.5), backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	// refreshes counts token refreshes in this call. The first may hand back
	// a token another client stored that has expired too (this client's
	// cached token was two rotations behind), so a second is allowed; it
	// calls the OAuth server only if the stored token is the one that just
	// failed.
	retries, refreshes := 0, 0

	for {
		if err := c.waitOperation(ctx, method); err != nil {
			return nil, err
		}
		if err := c.waitLimiter(ctx); err != nil {
			return nil, err
		}
		resp, used, e := c.attempt(ctx, method, body)
		if e == nil {
			c.ops.observe(c.portal, method, resp.Time)
			status = http.StatusOK
			return resp, nil
		}
		status = e.Status
		e.Method, e.Portal = method, c.portal
		c.tel.attemptFailed(ctx, method, c.portal, e)
		if ctx.Err() != nil {
			return nil, e
		}
		switch e.Kind() {
		case KindQueryLimit:
			_ = c.limiter.Saturated(ctx, c.portal, c.cfg.Rate)
			d := qlBackoff.NextBackOff()
			if d == backoff.Stop {
				return nil, e
			}
			c.log.WarnContext(ctx, "bitrix: QUERY_LIMIT_EXCEEDED, backing off", "member_id", c.portal, "method", method, "delay", d)
			if err := c.clock.Sleep(ctx, d); err != nil {
				return nil, e
			}
		case KindOperationLimit:
			e.ResetAt = c.ops.block(c.portal, method, e.ResetAt, c.clock.Now())
			c.log.WarnContext(ctx, "bitrix: OPERATION_TIME_LIMIT, method paused", "member_id", c.portal, "method", method, "until", e.ResetAt)
			if e.ResetAt.Sub(c.clock.Now()) > c.cfg.MaxOperationWait {
				return nil, e
			}
			// Rejected before execution like QUERY_LIMIT_EXCEEDED: loop and
			// wait in waitOperation.
		case KindOverload:
			c.log.ErrorContext(ctx, "bitrix: OVERLOAD_LIMIT: REST is blocked for the portal, not retrying", "member_id", c.portal, "method", method)
			return nil, e
		case KindAuth:
			if c.oauth == nil || refreshes >= 2 || (e.Code != CodeExpiredToken && e.Code != CodeInvalidToken) {
				return nil, e
			}
			refreshes++
			// Refresh the token this attempt used, not whatever is cached now:
			// a concurrent call may already have refreshed it.
			if _, err := c.oauth.refresh(ctx, used); err != nil {
				var re *Error
				if errors.As(err, &re) {
					return nil, re
				}
				return nil, &Error{Status: e.Status, Code: e.Code, Description: e.Description, Method: method, Portal: c.portal, Err: err, kind: KindAuth}
			}
		case KindTransient:
			if !idempotent {
				// The request may have been executed: never repeat a write
				// blindly (§9.6). A connection that was never made is safe.
				e.Ambiguous = !notSent(e.Err)
				if e.Ambiguous {
					return nil, e
				}
			}
			if retries >= c.cfg.MaxRetries {
				return nil, e
			}
			retries++
			d := transient.NextBackOff()
			c.log.InfoContext(ctx, "bitrix: transient failure, retrying", "member_id", c.portal, "method", method, "attempt", retries, "delay", d, "err", e)
			if err := c.clock.Sleep(ctx, d); err != nil {
				return nil, e
			}
		default:
			return nil, e
		}
	}
}

// grantKey marks a context whose first request was already granted by the
// limiter (Client.Reserve).
type grantKey struct{}

// Reserve waits until the portal's limiter grants one request and returns
// a context whose first request made with this client is sent without
// waiting again. A caller that must hold something scarce during the call
// (a database transaction, locks) waits for the portal's slot first and
// takes it after. Same errors as a request's limiter wait.
func (c *Client) Reserve(ctx context.Context) (context.Context, error) {
	if err := c.waitLimiter(ctx); err != nil {
		return ctx, err
	}
	g := &atomic.Bool{}
	g.Store(true)
	return context.WithValue(ctx, grantKey{}, g), nil
}

// NextSlot is the limiter's estimate of the earliest time Reserve could
// return at once (see SlotEstimator): the zero time when that is now, not
// known, or the limiter cannot tell. A caller that gathers work for the
// portal's next request can go on gathering until then.
func (c *Client) NextSlot() time.Time {
	if e, ok := c.limiter.(SlotEstimator); ok {
		return e.NextSlot(c.portal, c.cfg.Rate)
	}
	return time.Time{}
}

func (c *Client) waitLimiter(ctx context.Context) error {
	if g, ok := ctx.Value(grantKey{}).(*atomic.Bool); ok && g.CompareAndSwap(true, false) {
		return nil
	}
	start := c.clock.Now()
	if err := c.limiter.Wait(ctx, c.portal, c.cfg.Rate); err != nil {
		return &Error{Portal: c.portal, Description: "waiting for the rate limiter: " + err.Error(), Err: err, kind: KindLimiter}
	}
	c.tel.waited(ctx, c.portal, c.clock.Now().Sub(start))
	return nil
}

func (c *Client) waitOperation(ctx context.Context, method string) error {
	now := c.clock.Now()
	until := c.ops.until(c.portal, method)
	if !until.After(now) {
		return nil
	}
	if until.Sub(now) > c.cfg.MaxOperationWait {
		return &Error{Status: http.StatusTooManyRequests, Code: CodeOperationTimeLimit, Method: method, Portal: c.portal,
			Description: "method paused by this client until operating_reset_at", ResetAt: until}
	}
	if err := c.clock.Sleep(ctx, until.Sub(now)); err != nil {
		return &Error{Method: method, Portal: c.portal, Err: err, kind: KindTransient}
	}
	c.tel.waited(ctx, c.portal, until.Sub(now))
	return nil
}

// attempt makes one logical HTTP call, following redirects. It returns the
// access token it used ("" for webhooks).
func (c *Client) attempt(ctx context.Context, method string, body []byte) (*Response, string, *Error) {
	resp, token, e := c.attemptWith(ctx, method, body)
	return resp, token, e
}

func (c *Client) attemptWith(ctx context.Context, method string, body []byte) (*Response, string, *Error) {
	base, token, err := c.endpoint(ctx)
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, token, e
		}
		kind := KindTransient // the store is unreachable
		if errors.Is(err, ErrTokenNotFound) {
			kind = KindAuth
		}
		return nil, token, &Error{Description: err.Error(), Err: fmt.Errorf("%w: %w", errNotSent, err), kind: kind}
	}
	payload := withAuth(body, token)
	target := base.JoinPath(method)
	for hop := 0; ; hop++ {
		status, header, respBody, err := c.post(ctx, target.String(), payload)
		if err != nil {
			return nil, token, &Error{Err: err, Description: err.Error(), kind: KindTransient}
		}
		if status >= 300 && status < 400 && header.Get("Location") != "" {
			if hop >= c.cfg.MaxRedirects {
				return nil, token, &Error{Status: status, Description: "too many redirects", kind: KindPermanent}
			}
			loc, err := target.Parse(header.Get("Location"))
			if err != nil || !strings.HasSuffix(loc.Path, "/"+method) {
				// A self-hosted portal with an expired licence redirects every
				// call to a coupon page forever (§4.1, b24phpsdk#372).
				return nil, token, &Error{Status: status, Description: "redirected away from the REST API to " + header.Get("Location"), kind: KindPermanent}
			}
			if err := c.redirectAllowed(target, loc); err != nil {
				return nil, token, &Error{Status: status, Description: "redirect refused: " + err.Error(), Err: err, kind: KindPermanent}
			}
			c.rebase(ctx, base, loc, method)
			target = loc
			if err := c.waitLimiter(ctx); err != nil {
				var e *Error
				errors.As(err, &e)
				return nil, token, e
			}
			continue
		}
		resp, e := decodeResponse(method, status, respBody)
		return resp, token, e
	}
}

func (c *Client) post(ctx context.Context, target string, payload []byte) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.cfg.UserAgent)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, nil, redactURLError(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// endpoint returns the REST base URL and the access token ("" for webhooks).
func (c *Client) endpoint(ctx context.Context) (*url.URL, string, error) {
	if c.oauth == nil {
		c.mu.RLock()
		defer c.mu.RUnlock()
		u := *c.webhook
		return &u, "", nil
	}
	tok, err := c.oauth.token(ctx)
	if err != nil {
		return nil, "", err
	}
	base := tok.ClientEndpoint
	if base == "" {
		base = c.oauth.cfg.ClientEndpoint
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return nil, "", &Error{Description: fmt.Sprintf("stored token has no usable client_endpoint %q", base), kind: KindAuth}
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	return u, tok.AccessToken, nil
}

// redirectAllowed reports whether a redirect from target to loc may be
// followed: to the same scheme and host, or to a host the allow-list takes
// (a cloud portal over https, or a configured on-premise host).
func (c *Client) redirectAllowed(target, loc *url.URL) error {
	if loc.Scheme == target.Scheme && strings.EqualFold(loc.Host, target.Host) {
		return nil
	}
	check := *loc
	check.RawQuery, check.Fragment = "", ""
	_, err := c.hosts.Portal(check.String())
	return err
}

// rebase switches to the redirect target's base after a rename.
func (c *Client) rebase(ctx context.Context, oldBase, loc *url.URL, method string) {
	nb := *loc
	nb.Path = strings.TrimSuffix(loc.Path, method)
	nb.RawQuery = ""
	if nb.Host == oldBase.Host && nb.Path == oldBase.Path {
		return
	}
	if c.oauth != nil {
		c.oauth.rebase(ctx, nb.String(), nb.Host)
	} else {
		c.mu.Lock()
		c.webhook = &nb
		c.mu.Unlock()
	}
	c.log.InfoContext(ctx, "bitrix: portal moved", "member_id", c.portal, "old_domain", oldBase.Host, "new_domain", nb.Host)
	if c.onRename != nil && nb.Host != oldBase.Host {
		c.onRename(ctx, oldBase.Host, nb.Host)
	}
}

// errNotSent marks failures that happened before a request was sent.
var errNotSent = errors.New("request not sent")

// notSent reports errors that prove the request never left: a failed dial,
// or a failure before sending (no token).
func notSent(err error) bool {
	var op *net.OpError
	return errors.Is(err, errNotSent) || (errors.As(err, &op) && op.Op == "dial")
}

// redactURLError drops the URL from *url.Error: webhook URLs carry the
// secret code.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// readSuffixes mark methods that change nothing; they are retried after
// transient failures. Everything else is treated as a write.
var readSuffixes = []string{".get", ".list", ".getlist", ".fields", ".info", ".getfields", ".search", ".count"}

var readMethods = map[string]bool{
	"app.info": true, "feature.get": true, "event.get": true, "events": true, "profile": true,
	"server.time": true, "scope": true, "methods": true, "method.get": true, "user.current": true,
	"event.offline.list": true, "voximplant.statistic.get": true,
}

func isRead(method string) bool {
	m := strings.ToLower(method)
	if readMethods[m] {
		return true
	}
	if m == "event.offline.get" {
		return false // reserves or deletes queue records (§2.2)
	}
	for _, s := range readSuffixes {
		if strings.HasSuffix(m, s) {
			return true
		}
	}
	return false
}

// operationPauses remembers, per portal and method, until when the method
// is blocked by OPERATION_TIME_LIMIT, and the last operating_reset_at seen on
// a successful answer (a 429 body may not carry one).
type operationPauses struct {
	mu      sync.Mutex
	blocked map[string]time.Time
	lastRst map[string]time.Time
}

func newOperationPauses() *operationPauses {
	return &operationPauses{blocked: map[string]time.Time{}, lastRst: map[string]time.Time{}}
}

func (p *operationPauses) until(portal, method string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blocked[portal+"\x00"+method]
}

func (p *operationPauses) observe(portal, method string, t Time) {
	if t.OperatingResetAt.IsZero() {
		return
	}
	p.mu.Lock()
	p.lastRst[portal+"\x00"+method] = t.OperatingResetAt
	p.mu.Unlock()
}

// block pauses the method until resetAt, falling back to the last seen
// reset time or one minute (the limit is kept in one-minute baskets, §4.6).
func (p *operationPauses) block(portal, method string, resetAt, now time.Time) time.Time {
	k := portal + "\x00" + method
	p.mu.Lock()
	defer p.mu.Unlock()
	if !resetAt.After(now) {
		resetAt = p.lastRst[k]
	}
	if !resetAt.After(now) {
		resetAt = now.Add(time.Minute)
	}
	p.blocked[k] = resetAt
	return resetAt
}
