package fakeportal

import (
	"errors"
	"log/slog"
	"time"
)

// Config describes a fake portal. Every field is optional; zero values take
// the documented defaults.
type Config struct {
	// Addr is the listen address. Default "127.0.0.1:0" (a random port).
	Addr string
	// Domain is the portal host used in client_endpoint and event auth
	// blocks. Default: the listener's host:port. A made-up name such as
	// "acme.bitrix24.test" works with the http.Client from Portal.Client.
	Domain string
	// MemberID is the portal's member_id. Default a fixed 32-hex value.
	MemberID string
	// Rate and Burst are the leaky bucket (§4.5). Default 2 req/s, burst 50.
	Rate  float64
	Burst int // see Rate
	// OperatingLimit is the execution-time budget per method per app or
	// webhook over OperatingWindow (§4.6). Default 480s per 10 minutes.
	OperatingLimit  time.Duration
	OperatingWindow time.Duration // see OperatingLimit
	// OperatingCost is the simulated execution time of one call of method.
	// Default: none, so the operation limit only triggers through
	// Portal.BlockMethod or a configured cost.
	OperatingCost func(method string) time.Duration
	// TokenTTL is the access-token lifetime. Default 1h (§4.2).
	TokenTTL time.Duration
	// RecordingDelay is how long after a call ends its RECORD_FILE_ID
	// appears in voximplant.statistic.get (§5.5 leaves this open). Default 0.
	RecordingDelay time.Duration
	// HandlerTimeout bounds one event POST. Default 5s.
	HandlerTimeout time.Duration
	// SlowHandler is the response time above which a push counts as slow in
	// HandlerStats. Default 1s.
	SlowHandler time.Duration
	// Features answers feature.get; missing codes are "N". Default:
	// rest_offline_extended and rest_auth_connector enabled.
	Features map[string]bool
	// Faults are injected failures; they can be changed later with
	// Portal.SetFaults.
	Faults Faults
	// Seed seeds the fault dice, so a run is reproducible. Default 1.
	Seed uint64
	// Clock is the source of time. Default: the wall clock.
	Clock Clock
	// Logger receives one line per failed push. Default: discard.
	Logger *slog.Logger
}

// Faults are injected failures. Rates are probabilities in [0, 1].
type Faults struct {
	// Latency is added before every REST answer.
	Latency time.Duration
	// ServerErrorRate answers 500 INTERNAL_SERVER_ERROR (after the rate
	// check, without executing the method).
	ServerErrorRate float64
	// HTMLRate answers an HTML error page with HTMLStatus (default 502), as
	// the real portal does under load (§4.4).
	HTMLRate   float64
	HTMLStatus int // see HTMLRate
	// DropRate is the share of event pushes that are never sent (Bitrix24
	// does not resend, §3.4).
	DropRate float64
}

func (c *Config) applyDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.MemberID == "" {
		c.MemberID = "d897063e1ce7c5eb9f04b9751eef5915"
	}
	if c.Rate == 0 {
		c.Rate = 2
	}
	if c.Burst == 0 {
		c.Burst = 50
	}
	if c.OperatingLimit == 0 {
		c.OperatingLimit = 480 * time.Second
	}
	if c.OperatingWindow == 0 {
		c.OperatingWindow = 10 * time.Minute
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = time.Hour
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 5 * time.Second
	}
	if c.SlowHandler == 0 {
		c.SlowHandler = time.Second
	}
	if c.Features == nil {
		c.Features = map[string]bool{"rest_offline_extended": true, "rest_auth_connector": true}
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Clock == nil {
		c.Clock = wallClock{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate rejects impossible settings.
func (c *Config) Validate() error {
	if c.Rate < 0 || c.Burst < 0 {
		return errors.New("fakeportal: Rate and Burst must not be negative")
	}
	for _, r := range []float64{c.Faults.ServerErrorRate, c.Faults.HTMLRate, c.Faults.DropRate} {
		if r < 0 || r > 1 {
			return errors.New("fakeportal: fault rates must be within [0, 1]")
		}
	}
	return nil
}
