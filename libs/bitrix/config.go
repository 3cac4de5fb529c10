package bitrix

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config describes one portal connection. Exactly one of WebhookURL and
// OAuth is required; everything else has a documented default.
type Config struct {
	// WebhookURL is an incoming-webhook base such as
	// https://portal.bitrix24.com/rest/1/abcdef123/ (§4.1). Method names are
	// appended to it.
	WebhookURL string
	// OAuth authenticates as an application instead (client_endpoint plus
	// an access token from OAuth.Store).
	OAuth *OAuthConfig
	// MemberID is the portal's stable key for the limiter and telemetry.
	// Optional: OAuth.MemberID is used with OAuth, the webhook's host
	// otherwise (set it for webhooks so renames do not split the bucket).
	MemberID string
	// Rate is the portal's leaky bucket. Default DefaultRate (2 req/s,
	// burst 50); use EnterpriseRate (5/250) for Enterprise portals.
	Rate Rate
	// MaxRetries is how many times a read is retried after a transient
	// failure (network, 5xx, HTML page). Default 3; negative disables.
	// Writes are never retried after such a failure (§9.6).
	MaxRetries int
	// QueryLimitMaxElapsed bounds how long QUERY_LIMIT_EXCEEDED answers are
	// retried (with exponential backoff and jitter) before the call fails
	// with KindQueryLimit. Default 2m.
	QueryLimitMaxElapsed time.Duration
	// MaxOperationWait is how long a call may wait for a method paused by
	// OPERATION_TIME_LIMIT to reset before failing with KindOperationLimit.
	// Default 0: fail fast, and let the caller reschedule with RetryAfter.
	MaxOperationWait time.Duration
	// RequestTimeout bounds one HTTP attempt. Default 70s (the cloud cuts a
	// request at 60s, §4.6).
	RequestTimeout time.Duration
	// MaxRedirects bounds 302 hops after a portal rename. Default 3.
	MaxRedirects int
	// UserAgent is sent with every request (§4.1 recommends one). Default
	// "b24hub-bitrix".
	UserAgent string
}

func (c *Config) applyDefaults() {
	if c.Rate == (Rate{}) {
		c.Rate = DefaultRate
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 3
	}
	if c.MaxRetries < 0 {
		c.MaxRetries = 0
	}
	if c.QueryLimitMaxElapsed == 0 {
		c.QueryLimitMaxElapsed = 2 * time.Minute
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 70 * time.Second
	}
	if c.MaxRedirects == 0 {
		c.MaxRedirects = 3
	}
	if c.UserAgent == "" {
		c.UserAgent = "b24hub-bitrix"
	}
	if c.OAuth != nil && c.MemberID == "" {
		c.MemberID = c.OAuth.MemberID
	}
}

// Validate reports a missing or contradictory setting. Zero values that have
// defaults are valid.
func (c *Config) Validate() error {
	if (c.WebhookURL == "") == (c.OAuth == nil) {
		return errors.New("bitrix: exactly one of WebhookURL and OAuth is required")
	}
	if c.WebhookURL != "" {
		u, err := url.Parse(c.WebhookURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("bitrix: WebhookURL %q is not an http(s) URL", redactWebhook(c.WebhookURL))
		}
		if !strings.Contains(u.Path, "/rest/") {
			return fmt.Errorf("bitrix: WebhookURL %q has no /rest/{user}/{code}/ path", redactWebhook(c.WebhookURL))
		}
	}
	if c.OAuth != nil {
		if err := c.OAuth.Validate(); err != nil {
			return err
		}
	}
	if c.Rate != (Rate{}) {
		if err := c.Rate.Validate(); err != nil {
			return err
		}
	}
	if c.QueryLimitMaxElapsed < 0 || c.MaxOperationWait < 0 || c.RequestTimeout < 0 || c.MaxRedirects < 0 {
		return errors.New("bitrix: durations and MaxRedirects must not be negative")
	}
	return nil
}

// redactWebhook hides the secret code in /rest/{user}/{code}/.
func redactWebhook(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	parts := strings.Split(u.Path, "/")
	for i := range parts {
		if parts[i] == "rest" && i+2 < len(parts) {
			parts[i+2] = "***"
			break
		}
	}
	u.Path = strings.Join(parts, "/")
	return u.String()
}
