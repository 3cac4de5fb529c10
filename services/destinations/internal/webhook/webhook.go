// Package webhook sends one signed request the way the Standard Webhooks
// specification (standardwebhooks.com) describes, and classifies the answer
// for the retry policy: success, retry (5xx, 429, timeouts, connection
// errors, with the receiver's Retry-After) or permanent (other 4xx).
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Header names of the Standard Webhooks specification.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// MaxResponseBody is how much of a response body is read (and kept for
// the error text); the rest is discarded unread, so a receiver answering
// with a huge body cannot exhaust the service's memory.
const MaxResponseBody = 64 << 10

// Sign returns the webhook-signature value: "v1,<base64 HMAC-SHA256 of
// id.timestamp.body>" for each key, separated by spaces, so a receiver
// holding either secret verifies during a rotation.
func Sign(id string, ts time.Time, body []byte, keys [][]byte) string {
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		m := hmac.New(sha256.New, k)
		m.Write([]byte(id))
		m.Write([]byte{'.'})
		m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
		m.Write([]byte{'.'})
		m.Write(body)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// Request is one delivery attempt.
type Request struct {
	// URL is the endpoint.
	URL string
	// ID is the stable delivery id (the same on every attempt).
	ID string
	// Body is the JSON payload.
	Body []byte
	// Keys sign the request.
	Keys [][]byte
	// Header holds extra headers (traceparent).
	Header http.Header
}

// Result is what one attempt gave.
type Result struct {
	// Status is the HTTP status, 0 when no response came.
	Status int
	// Latency is from sending to the end of the bounded body read.
	Latency time.Duration
	// RetryAfter is the receiver's Retry-After on a 429 or 503, zero when absent.
	RetryAfter time.Duration
	// Err is nil on a 2xx; otherwise it says what went wrong.
	Err error
	// Permanent is true when retrying cannot help (a 4xx other than 408
	// and 429, or a refused address).
	Permanent bool
}

// Unavailable reports whether the receiver did not answer or said it
// cannot now (no response, 408, 429, 5xx): the destination is down or
// overloaded, not the event at fault. Outcomes report such a retry with
// error kind "unavailable".
func (r Result) Unavailable() bool {
	if r.Err == nil || r.Permanent {
		return false
	}
	return r.Status == 0 || r.Status == 408 || r.Status == 429 || r.Status >= 500
}

// ErrAddressNotAllowed is returned, permanent, when the endpoint resolves
// to an address the sender may not reach.
var ErrAddressNotAllowed = errors.New("webhook: address not allowed")

// Sender posts requests through its own client: a dialer that checks each
// resolved address at connect time (so DNS cannot point a public name at
// the cluster), no redirects, and no proxy from the environment.
type Sender struct {
	client *http.Client
	now    func() time.Time
}

// SenderOptions tune a Sender. The zero value is the production setting.
type SenderOptions struct {
	// AllowedNets are private, loopback or link-local prefixes that may be
	// reached anyway (an operator's explicit exception). Optional.
	AllowedNets []netip.Prefix
	// TLS overrides the TLS configuration (tests trust their own CA).
	TLS *tls.Config
}

// NewSender returns a Sender.
func NewSender(o SenderOptions) *Sender {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error { return checkAddress(address, o.AllowedNets) }}
	tr := &http.Transport{
		DialContext: d.DialContext, TLSClientConfig: o.TLS, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second,
	}
	return &Sender{
		client: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		now: time.Now,
	}
}

// checkAddress refuses loopback, private, link-local, multicast and
// unspecified addresses unless one of allowed holds them.
func checkAddress(address string, allowed []netip.Prefix) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrAddressNotAllowed, host)
	}
	ip = ip.Unmap()
	for _, p := range allowed {
		if p.Contains(ip) {
			return nil
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || cgnat.Contains(ip) {
		return fmt.Errorf("%w: %s is loopback, private or link-local (allow it with B24HUB_DESTINATIONS_ALLOW_NETS)", ErrAddressNotAllowed, ip)
	}
	return nil
}

// cgnat is the shared address space (RFC 6598) clusters often use inside.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Send makes one attempt, bounded by timeout, and classifies it.
func (s *Sender) Send(ctx context.Context, r Request, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	ts := s.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Result{Err: err, Permanent: true}
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "b24hub-destinations")
	req.Header.Set(HeaderID, r.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(r.ID, ts, r.Body, r.Keys))
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return Result{Latency: time.Since(start), Err: err, Permanent: errors.Is(err, ErrAddressNotAllowed)}
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBody))
	resp.Body.Close()
	res := Result{Status: resp.StatusCode, Latency: time.Since(start)}
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return res
	case c == http.StatusTooManyRequests || c == http.StatusServiceUnavailable:
		res.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), s.now())
		res.Err = fmt.Errorf("status %d: %s", c, snippet(body))
	case c >= 500 || c == http.StatusRequestTimeout:
		res.Err = fmt.Errorf("status %d: %s", c, snippet(body))
	default:
		res.Err = fmt.Errorf("status %d: %s", c, snippet(body))
		res.Permanent = true
	}
	if rerr != nil && res.Err == nil {
		res.Err = rerr
	}
	return res
}

// parseRetryAfter reads seconds or an HTTP date; unparseable means none.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func snippet(b []byte) string {
	const max = 256
	if len(b) > max {
		b = b[:max]
	}
	return strings.TrimSpace(string(b))
}
