package fakeportal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Portal is a running fake portal. All methods are safe for concurrent use.
type Portal struct {
	cfg  Config
	ln   net.Listener
	srv  *http.Server
	base string // http://127.0.0.1:port
	push *http.Client

	mu         sync.Mutex
	domain     string
	oldDomains map[string]bool
	bucket     bucket
	ops        *operating
	rng        *rand.Rand
	faults     Faults
	qle        queryLimitFault
	stats      Stats
	methods    map[string]int64

	webhooks map[string]int64 // code → user ID
	apps     map[string]*app  // by client_id
	access   map[string]*grant
	refresh  map[string]*grant

	deals       map[int64]*deal
	nextDeal    int64
	dealUF      map[string]string // UF_CRM_* name → type
	contacts    map[int64]map[string]string
	nextContact int64
	tasks       map[int64]*task
	nextTask    int64
	nextItem    int64
	calls       []*callRecord
	files       map[int64]*file
	nextFile    int64

	handlers    []*handler
	nextHandler int64
	offline     []*offlineRecord
	nextOffline int64
	lastNotify  map[int64]time.Time
	deliveries  []Delivery
	handlerStat map[string]*HandlerStat

	pending  []delivery // push queue, guarded by mu
	wake     *sync.Cond
	inflight sync.WaitGroup
	workers  sync.WaitGroup
	closed   bool
}

// New starts a portal listening on cfg.Addr.
func New(cfg Config) (*Portal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("fakeportal: listen: %w", err)
	}
	p := &Portal{
		cfg: cfg, ln: ln, base: "http://" + ln.Addr().String(),
		oldDomains: map[string]bool{}, ops: newOperating(),
		rng:    rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		faults: cfg.Faults, methods: map[string]int64{},
		webhooks: map[string]int64{}, apps: map[string]*app{}, access: map[string]*grant{}, refresh: map[string]*grant{},
		deals: map[int64]*deal{}, dealUF: map[string]string{"UF_CRM_SYNC_LOCK": "boolean", "UF_CRM_EXTERNAL_ID": "string"},
		contacts: map[int64]map[string]string{}, tasks: map[int64]*task{}, files: map[int64]*file{},
		lastNotify: map[int64]time.Time{}, handlerStat: map[string]*HandlerStat{},
	}
	p.wake = sync.NewCond(&p.mu)
	p.domain = cfg.Domain
	if p.domain == "" {
		p.domain = ln.Addr().String()
	}
	p.push = &http.Client{Timeout: cfg.HandlerTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	for range 4 {
		p.workers.Add(1)
		go p.deliverLoop()
	}
	return p, nil
}

// Close stops the server and the event sender; queued pushes are dropped
// and requests still running after 200ms are cut.
func (p *Portal) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.wake.Broadcast()
	p.mu.Unlock()
	// Shutdown treats a connection that was dialed but never used (the
	// client's transport races dials) as busy for 5s; like httptest, give
	// requests in flight a moment, then cut the rest.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := p.srv.Shutdown(ctx); err != nil {
		_ = p.srv.Close()
	}
	p.workers.Wait()
	return nil
}

// URL is the listener's base URL, e.g. http://127.0.0.1:34567.
func (p *Portal) URL() string { return p.base }

// Domain is the portal's current host (it changes with Rename).
func (p *Portal) Domain() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.domain
}

// MemberID is the portal's member_id.
func (p *Portal) MemberID() string { return p.cfg.MemberID }

// ClientEndpoint is the REST base for OAuth calls, http://{domain}/rest/.
func (p *Portal) ClientEndpoint() string { return "http://" + p.Domain() + "/rest/" }

// ServerEndpoint is this fake's OAuth server REST base; the fake plays the
// regional OAuth server too, so refreshes go to its /oauth/token/.
func (p *Portal) ServerEndpoint() string { return p.base + "/rest/" }

// Client returns an HTTP client that reaches this portal whatever host a URL
// names, so made-up domains (and renames) work without DNS.
func (p *Portal) Client() *http.Client {
	addr := p.ln.Addr().String()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Client{Transport: tr, Timeout: 90 * time.Second}
}

// SetFaults replaces the injected faults.
func (p *Portal) SetFaults(f Faults) {
	p.mu.Lock()
	p.faults = f
	p.mu.Unlock()
}

// Rename moves the portal to a new domain: requests to any old domain get a
// 302 to the same path on the new one (§4.1).
func (p *Portal) Rename(newDomain string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.oldDomains[p.domain] = true
	delete(p.oldDomains, newDomain)
	p.domain = newDomain
}

// BlockMethod makes method answer 429 OPERATION_TIME_LIMIT for every caller
// until until (§4.6).
func (p *Portal) BlockMethod(method string, until time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ops.blocked["*\x00"+strings.ToLower(method)] = until
}

// ServeHTTP routes /rest/ (REST), /oauth/token/ (OAuth server) and /_fake/
// (control API for tests and the CLI).
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/rest/"):
		p.serveREST(w, r)
	case strings.HasPrefix(r.URL.Path, "/oauth/token"):
		p.serveToken(w, r)
	case strings.HasPrefix(r.URL.Path, "/_fake/"):
		p.serveControl(w, r)
	default:
		http.NotFound(w, r)
	}
}

// apiError is a REST error answer (§4.4).
type apiError struct {
	status int
	code   string
	desc   string
}

func (e *apiError) Error() string { return e.code + ": " + e.desc }

func errf(status int, code, format string, a ...any) *apiError {
	return &apiError{status: status, code: code, desc: fmt.Sprintf(format, a...)}
}

var (
	errMethodNotFound = &apiError{404, "ERROR_METHOD_NOT_FOUND", "Method not found!"}
	errNoAuth         = &apiError{401, "NO_AUTH_FOUND", "Wrong authorization data"}
	errWrongAuthType  = &apiError{401, "WRONG_AUTH_TYPE", "Current authorization type is denied for this method"}
)

// principal is who is calling: a webhook's user or an app's token.
type principal struct {
	webhook string // code, for webhooks
	app     *app   // for OAuth
	userID  int64
}

func (w principal) key() string {
	if w.app != nil {
		return "app:" + w.app.ClientID
	}
	return "hook:" + w.webhook
}

// call is one method execution (a request or a batch sub-command).
type call struct {
	method    string
	params    params
	who       principal
	now       time.Time
	connector string // auth_connector of a write (§2.4)
	fire      []firing
}

// page carries list paging for the envelope.
type page struct {
	total   int
	next    int
	hasNext bool
	noCount bool // start=-1: no total, no next (§4.8)
}

func (p *Portal) serveREST(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	if p.oldDomains[r.Host] {
		target := "http://" + p.domain + r.URL.RequestURI()
		p.mu.Unlock()
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	faults := p.faults
	p.mu.Unlock()
	if faults.Latency > 0 {
		time.Sleep(faults.Latency)
	}

	rest := strings.Trim(strings.TrimPrefix(r.URL.Path, "/rest/"), "/")
	segs := strings.Split(rest, "/")
	method := strings.ToLower(strings.TrimSuffix(segs[len(segs)-1], ".json"))

	p.mu.Lock()
	now := p.cfg.Clock.Now()
	p.stats.Requests++
	if !p.bucket.admit(now, p.cfg.Rate, p.cfg.Burst) {
		p.stats.QueryLimitExceeded++
		p.mu.Unlock()
		writeError(w, now, &apiError{503, "QUERY_LIMIT_EXCEEDED", "Too many requests"}, time.Time{}, 0)
		return
	}
	p.stats.MaxLevel = p.bucket.max
	switch {
	case p.injectQueryLimit(now):
		p.mu.Unlock()
		writeError(w, now, &apiError{503, "QUERY_LIMIT_EXCEEDED", "Too many requests"}, time.Time{}, 0)
		return
	case faults.HTMLRate > 0 && p.rng.Float64() < faults.HTMLRate:
		p.stats.InjectedFaults++
		p.mu.Unlock()
		status := faults.HTMLStatus
		if status == 0 {
			status = http.StatusBadGateway
		}
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><head><title>%d</title></head><body><h1>%d %s</h1><hr>nginx</body></html>", status, status, http.StatusText(status))
		return
	case faults.ServerErrorRate > 0 && p.rng.Float64() < faults.ServerErrorRate:
		p.stats.InjectedFaults++
		p.mu.Unlock()
		writeError(w, now, &apiError{500, "INTERNAL_SERVER_ERROR", "Internal server error"}, time.Time{}, 0)
		return
	}
	p.mu.Unlock()

	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeError(w, now, errf(400, "INVALID_REQUEST", "cannot read body"), time.Time{}, 0)
		return
	}
	prm, rawJSON, form, err := requestParams(r, body)
	if err != nil {
		writeError(w, now, errf(400, "INVALID_REQUEST", "cannot parse parameters: %v", err), time.Time{}, 0)
		return
	}

	p.mu.Lock()
	who, aerr := p.authenticate(segs, prm, now)
	if aerr != nil {
		p.mu.Unlock()
		writeError(w, now, aerr, time.Time{}, 0)
		return
	}
	delete(prm, "auth")
	c := &call{method: method, params: prm, who: who, now: now, connector: prm.str("auth_connector")}
	var (
		result  any
		pg      *page
		resetAt time.Time
		used    time.Duration
	)
	if method == "batch" {
		result, aerr = p.batch(c, rawJSON, form)
	} else {
		result, pg, resetAt, used, aerr = p.execute(c)
	}
	p.methods[method]++
	fire := c.fire
	p.mu.Unlock()
	p.dispatch(fire)

	if aerr != nil {
		writeError(w, now, aerr, resetAt, used)
		return
	}
	writeResult(w, now, result, pg, resetAt, used)
}

// requestParams reads JSON or form parameters, plus the query string. Batch
// needs the cmd key order, so it also returns the raw JSON body or the form
// pairs.
func requestParams(r *http.Request, body []byte) (params, []byte, []b24event.Field, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		p    params
		err  error
		raw  []byte
		form []b24event.Field
	)
	switch {
	case ct == "application/json" || (ct == "" && len(body) > 0 && strings.HasPrefix(strings.TrimSpace(string(body)), "{")):
		p, err = parseJSON(body)
		raw = body
	default:
		var b *b24event.Body
		b, err = b24event.Decode(b24event.ContentTypeForm, body, formLimits)
		if err == nil {
			p, form = params(b.Tree), b.Fields
		}
	}
	if err != nil {
		return nil, nil, nil, err
	}
	q, err := parseForm(r.URL.RawQuery)
	if err != nil {
		return nil, nil, nil, err
	}
	for k, v := range q {
		if _, ok := p.get(k); !ok {
			p[k] = v
		}
	}
	return p, raw, form, nil
}

// execute runs one non-batch method with the operation-time limit applied.
// Caller holds p.mu.
func (p *Portal) execute(c *call) (any, *page, time.Time, time.Duration, *apiError) {
	fn, ok := restMethods[c.method]
	if !ok {
		return nil, nil, time.Time{}, 0, errMethodNotFound
	}
	key := c.who.key() + "\x00" + c.method
	if until, blocked := p.ops.blocked["*\x00"+c.method]; blocked && c.now.Before(until) {
		p.stats.OperationLimitExceeded++
		return nil, nil, until, p.cfg.OperatingLimit, &apiError{429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."}
	}
	okRun, resetAt, used := p.ops.check(key, c.now, p.cfg.OperatingLimit, p.cfg.OperatingWindow)
	if !okRun {
		p.stats.OperationLimitExceeded++
		return nil, nil, resetAt, used, &apiError{429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit."}
	}
	res, pg, aerr := fn(p, c)
	if p.cfg.OperatingCost != nil {
		cost := p.cfg.OperatingCost(c.method)
		p.ops.add(key, c.now, cost)
		used += cost
		if resetAt.IsZero() && cost > 0 {
			resetAt = c.now.Add(p.cfg.OperatingWindow)
		}
	}
	return res, pg, resetAt, used, aerr
}

// timeBlock is the envelope's "time" (§4.3).
func timeBlock(now time.Time, resetAt time.Time, used time.Duration) map[string]any {
	ts := float64(now.UnixNano()) / 1e9
	t := map[string]any{
		"start": ts, "finish": ts + 0.001, "duration": 0.001, "processing": 0.0005,
		"date_start": now.Format(isoLayout), "date_finish": now.Format(isoLayout),
		"operating": used.Seconds(),
	}
	if !resetAt.IsZero() {
		t["operating_reset_at"] = resetAt.Unix()
	}
	return t
}

func writeResult(w http.ResponseWriter, now time.Time, result any, pg *page, resetAt time.Time, used time.Duration) {
	env := map[string]any{"result": result, "time": timeBlock(now, resetAt, used)}
	if pg != nil {
		if pg.noCount {
			env["total"] = 0
		} else {
			env["total"] = pg.total
			if pg.hasNext {
				env["next"] = pg.next
			}
		}
	}
	writeJSON(w, http.StatusOK, env)
}

func writeError(w http.ResponseWriter, now time.Time, e *apiError, resetAt time.Time, used time.Duration) {
	env := map[string]any{"error": e.code, "error_description": e.desc}
	if e.code == "OPERATION_TIME_LIMIT" {
		env["time"] = timeBlock(now, resetAt, used)
	}
	writeJSON(w, e.status, env)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// isoLayout is Bitrix24's datetime format, e.g. 2024-07-18T12:32:31+02:00.
const isoLayout = "2006-01-02T15:04:05-07:00"
