// Package loadgen posts realistic Bitrix24 event bodies to an ingress at a
// fixed rate for a bounded time and reports latency percentiles and
// errors. Bodies are built like a real push (form encoding, PHP brackets,
// documented field order, the auth block of an outgoing webhook), so the
// ingress does all of its real work for each request.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Bounds every run respects, whatever it is asked.
const (
	MaxDuration = 10 * time.Minute
	MaxRate     = 5000
	MaxRequests = 1_000_000
)

// Portal is a portal whose events are simulated.
type Portal struct {
	MemberID         string
	Domain           string
	ApplicationToken string
}

// Config is one load run.
type Config struct {
	// URL is the ingress event endpoint, e.g.
	// http://127.0.0.1:8080/bitrix24/events (required).
	URL string
	// AllowRemote permits a non-loopback URL (off by default, so a typo
	// cannot load a production ingress).
	AllowRemote bool
	// Portals are picked round-robin (at least one).
	Portals []Portal
	// Events are event codes picked round-robin (at least one).
	Events []string
	// Rate is requests per second (>0, at most MaxRate).
	Rate float64
	// Duration bounds the run (>0, at most MaxDuration).
	Duration time.Duration
	// Requests, when >0, ends the run after that many requests.
	Requests int
	// Concurrency bounds requests in flight. Default 64.
	Concurrency int
	// HTTPClient sends the requests. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Progress, when set, is called with requests done and planned.
	Progress func(done, planned int64)
	// Seed makes entity ids reproducible. Default 1.
	Seed uint64
}

// Validate reports a config that must not run.
func (c *Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("ingress URL %q is not an http(s) URL", c.URL))
	} else if !c.AllowRemote && !Loopback(u.Hostname()) {
		errs = append(errs, fmt.Errorf("ingress URL %s is not a loopback address; pass --allow-remote to load a remote ingress on purpose", u.Host))
	}
	if len(c.Portals) == 0 {
		errs = append(errs, errors.New("no portal to simulate: pass --portal MEMBER_ID:TOKEN or --portals-file"))
	}
	for _, p := range c.Portals {
		if p.MemberID == "" || p.ApplicationToken == "" {
			errs = append(errs, fmt.Errorf("portal %q: member id and application token are required", p.MemberID))
		}
	}
	if len(c.Events) == 0 {
		errs = append(errs, errors.New("no event type to simulate"))
	}
	if c.Rate <= 0 || c.Rate > MaxRate {
		errs = append(errs, fmt.Errorf("rate %v: want 0 < rate <= %d per second", c.Rate, MaxRate))
	}
	if c.Duration <= 0 || c.Duration > MaxDuration {
		errs = append(errs, fmt.Errorf("duration %s: want 0 < duration <= %s", c.Duration, MaxDuration))
	}
	if c.Requests < 0 || c.Requests > MaxRequests {
		errs = append(errs, fmt.Errorf("requests %d: want 0..%d", c.Requests, MaxRequests))
	}
	return errors.Join(errs...)
}

// Loopback reports whether host names this machine.
func Loopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Report is the result of a run.
type Report struct {
	Requests int            `json:"requests"`
	OK       int            `json:"ok"`
	Failed   int            `json:"failed"`
	ByStatus map[string]int `json:"by_status"`
	// Errors counts transport errors by message (no status).
	Errors      map[string]int `json:"errors,omitempty"`
	ElapsedSecs float64        `json:"elapsed_seconds"`
	RatePerSec  float64        `json:"rate_per_second"`
	LatencyMS   Percentiles    `json:"latency_ms"`
	// Interrupted is true when ctx ended (Ctrl-C) before the planned
	// requests were sent; the report covers those sent.
	Interrupted bool `json:"interrupted,omitempty"`
}

// Percentiles of request latency, in milliseconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Planned is how many requests a run sends if nothing stops it early.
func (c *Config) Planned() int {
	n := int(c.Rate * c.Duration.Seconds())
	if c.Requests > 0 && c.Requests < n {
		n = c.Requests
	}
	return max(min(n, MaxRequests), 1)
}

// Run sends the load and returns the report. It stops sending at the
// planned count, the duration, or ctx's end (Report.Interrupted),
// whichever comes first. Requests in flight are awaited and not cut short
// by ctx's end, so an interrupted run reports real answers, not
// cancellations; each is bounded by the HTTP client's timeout.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 64
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Seed == 0 {
		cfg.Seed = 1
	}
	planned := cfg.Planned()
	// In-flight requests outlive an interrupt, within a grace period.
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Duration+10*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed+1))
	var (
		mu        sync.Mutex
		latencies = make([]time.Duration, 0, planned)
		rep       = Report{ByStatus: map[string]int{}, Errors: map[string]int{}}
		done      int64
		wg        sync.WaitGroup
	)
	slots := make(chan struct{}, cfg.Concurrency)
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	interval := time.Duration(float64(time.Second) / cfg.Rate)
	interrupted := false
send:
	for i := range planned {
		if ctx.Err() != nil {
			interrupted = true
			break
		}
		at := start.Add(time.Duration(i) * interval)
		if at.After(deadline) {
			break
		}
		if d := time.Until(at); d > 0 {
			select {
			case <-ctx.Done():
				interrupted = true
				break send
			case <-time.After(d):
			}
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			interrupted = true
			break send
		}
		p := cfg.Portals[i%len(cfg.Portals)]
		ev := cfg.Events[(i/len(cfg.Portals))%len(cfg.Events)]
		body := Body(p, ev, strconv.Itoa(1+rng.IntN(100000)), time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			t0 := time.Now()
			status, err := post(reqCtx, hc, cfg.URL, body)
			lat := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			rep.Requests++
			switch {
			case err != nil:
				rep.Failed++
				rep.Errors[errText(err)]++
			case status == http.StatusOK:
				rep.OK++
				latencies = append(latencies, lat)
				rep.ByStatus[strconv.Itoa(status)]++
			default:
				rep.Failed++
				latencies = append(latencies, lat)
				rep.ByStatus[strconv.Itoa(status)]++
			}
			done++
			if cfg.Progress != nil {
				cfg.Progress(done, int64(planned))
			}
		}()
	}
	wg.Wait()
	rep.Interrupted = interrupted
	elapsed := time.Since(start)
	rep.ElapsedSecs = elapsed.Seconds()
	if elapsed > 0 {
		rep.RatePerSec = float64(rep.Requests) / elapsed.Seconds()
	}
	rep.LatencyMS = percentiles(latencies)
	if len(rep.Errors) == 0 {
		rep.Errors = nil
	}
	return rep, nil
}

func post(ctx context.Context, hc *http.Client, target string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "b24ctl-simulate")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// errText shortens a transport error to a stable label.
func errText(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// percentiles uses the nearest-rank method.
func percentiles(ds []time.Duration) Percentiles {
	if len(ds) == 0 {
		return Percentiles{}
	}
	slices.Sort(ds)
	at := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		i = min(max(i, 0), len(ds)-1)
		return float64(ds[i].Microseconds()) / 1000
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: float64(ds[len(ds)-1].Microseconds()) / 1000}
}

// Body builds an outgoing-webhook style push of event about entity id, in
// the documented field order (§3.2).
func Body(p Portal, event, id string, now time.Time) []byte {
	domain := p.Domain
	if domain == "" {
		domain = "simulated.bitrix24.com"
	}
	f := []b24event.Field{{Key: "event", Value: event}, {Key: "event_handler_id", Value: "1"}}
	switch {
	case event == "ONTASKADD":
		f = append(f, b24event.Field{Key: "data[FIELDS_BEFORE]", Value: "undefined"}, b24event.Field{Key: "data[FIELDS_AFTER][ID]", Value: id},
			b24event.Field{Key: "data[IS_ACCESSIBLE_BEFORE]", Value: "N"}, b24event.Field{Key: "data[IS_ACCESSIBLE_AFTER]", Value: "undefined"})
	case event == "ONTASKUPDATE":
		f = append(f, b24event.Field{Key: "data[FIELDS_BEFORE][ID]", Value: id}, b24event.Field{Key: "data[FIELDS_AFTER][ID]", Value: id},
			b24event.Field{Key: "data[IS_ACCESSIBLE_BEFORE]", Value: "undefined"}, b24event.Field{Key: "data[IS_ACCESSIBLE_AFTER]", Value: "undefined"})
	case event == "ONTASKDELETE":
		f = append(f, b24event.Field{Key: "data[FIELDS_BEFORE][ID]", Value: id}, b24event.Field{Key: "data[FIELDS_AFTER]", Value: "undefined"})
	case strings.HasPrefix(event, "ONVOXIMPLANT"), strings.HasPrefix(event, "ONEXTERNALCALL"):
		f = append(f, b24event.Field{Key: "data[CALL_ID]", Value: "externalCall." + id}, b24event.Field{Key: "data[CALL_TYPE]", Value: "2"})
	default:
		f = append(f, b24event.Field{Key: "data[FIELDS][ID]", Value: id})
	}
	return b24event.EncodeForm(append(f,
		b24event.Field{Key: "ts", Value: strconv.FormatInt(now.Unix(), 10)},
		b24event.Field{Key: "auth[domain]", Value: domain},
		b24event.Field{Key: "auth[client_endpoint]", Value: "https://" + domain + "/rest/"},
		b24event.Field{Key: "auth[server_endpoint]", Value: "https://oauth.bitrix.info/rest/"},
		b24event.Field{Key: "auth[member_id]", Value: p.MemberID},
		b24event.Field{Key: "auth[application_token]", Value: p.ApplicationToken},
	))
}
