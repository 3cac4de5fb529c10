package eventbus

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
)

// ServerWatch moves a connection off a NATS server that is cut off from
// the JetStream cluster.
//
// A NATS client stays on the server it is connected to as long as that
// server answers, and a server on the wrong side of a network partition
// answers: its clients keep their connection but get no JetStream (no
// publish is stored, no pull is served) until the partition heals. In a
// three-node cluster that is every service replica connected to the
// isolated node: an ingress that answers 503 and consumers that stall for
// as long as the partition lasts, although two nodes carry on. The watch
// asks JetStream every Interval, through the connection, for the
// account's info ($JS.API.INFO, answered by the meta leader): while the
// server is cut off the request gets no answer, and once the server knows
// it has no meta leader (its raft group turned candidate after the
// election timeout, 4–9 s; a meta leader cut off answers on until it
// notices the lost quorum, about 10 s) it answers "JetStream system
// temporarily unavailable" (10008). When every probe failed for Patience,
// or the server answered 10008 to every probe for half of it, the watch
// forces a reconnect, which goes to the next server of the connection's
// pool: another node when the client was given every node's URL, or
// discovered them; through a load-balanced address (a Kubernetes Service)
// the reconnect may land on the same node again, and the watch moves it
// once more after the next Patience. The probe costs one small request per
// Interval. NATS has no such failover of its own: a client leaves a server
// only when the connection breaks.
type ServerWatch struct {
	// Interval is the time between probes, and each probe's timeout
	// (default 2 s).
	Interval time.Duration
	// Patience is how long every probe must have failed before the
	// connection leaves its server (default 10 s): longer than the
	// election timeout after a meta leader died, during which healthy
	// servers do not answer either. Answers of 10008 leave after half of
	// it: a healthy server gives them only while a new meta leader is
	// being elected, a moment once the election timeout has passed.
	Patience time.Duration
	// Log gets a warning when the connection leaves a server (default
	// slog.Default()).
	Log *slog.Logger
}

// Start watches nc until nc is closed or stop is called.
func (w ServerWatch) Start(nc *nats.Conn) (stop func()) {
	if w.Interval <= 0 {
		w.Interval = 2 * time.Second
	}
	if w.Patience <= 0 {
		w.Patience = 10 * time.Second
	}
	if w.Log == nil {
		w.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx, nc)
	}()
	return func() { cancel(); <-done }
}

func (w ServerWatch) run(ctx context.Context, nc *nats.Conn) {
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	var c cutOff
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if nc.IsClosed() {
			return
		}
		if nc.Status() != nats.CONNECTED {
			c = cutOff{}
			continue
		}
		server := nc.ConnectedServerName()
		err := probeJetStream(nc, w.Interval)
		if !c.observe(server, err, time.Now(), w.Patience) {
			continue
		}
		w.Log.WarnContext(ctx, "NATS server cut off from the JetStream cluster; moving to another server",
			"server", server, "for", time.Since(c.since).Round(time.Second).String(), "error", err.Error())
		if err := nc.ForceReconnect(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			w.Log.WarnContext(ctx, "NATS reconnect failed", "error", err.Error())
		}
		c = cutOff{}
	}
}

// cutOff tracks one server's run of failed probes.
type cutOff struct {
	server string
	since  time.Time // first failed probe of the run
	probes int       // failed probes in the run
	// unavailSince and unavail are the same for the run of 10008 answers.
	unavailSince time.Time
	unavail      int
}

// observe records a probe of server (err nil: JetStream answered) at now
// and reports whether every probe of server failed for at least patience,
// or got 10008 for at least patience/2 (each at least twice).
func (c *cutOff) observe(server string, err error, now time.Time, patience time.Duration) bool {
	if err == nil || server != c.server {
		*c = cutOff{server: server}
	}
	if err == nil {
		return false
	}
	if c.probes == 0 {
		c.since = now
	}
	c.probes++
	if errors.Is(err, errJetStreamUnavailable) {
		if c.unavail == 0 {
			c.unavailSince = now
		}
		c.unavail++
	} else {
		c.unavail = 0
	}
	return c.probes >= 2 && now.Sub(c.since) >= patience ||
		c.unavail >= 2 && now.Sub(c.unavailSince) >= patience/2
}

// errJetStreamUnavailable is the probe's error when the server answered
// that JetStream has no meta leader (10008).
var errJetStreamUnavailable = errors.New("JetStream system temporarily unavailable (10008)")

// probeJetStream asks for the account's info through nc. It fails when
// the request gets no answer within timeout or no responder, or when the
// server answers that the cluster is unavailable; any other answer (also
// an error such as "not enabled for account") came from a server that
// reaches the meta leader.
func probeJetStream(nc *nats.Conn, timeout time.Duration) error {
	m, err := nc.Request("$JS.API.INFO", nil, timeout)
	if err != nil {
		return err
	}
	var resp struct {
		Error *struct {
			ErrCode int `json:"err_code"`
		} `json:"error"`
	}
	if json.Unmarshal(m.Data, &resp) == nil && resp.Error != nil && resp.Error.ErrCode == jsClusterNotAvail {
		return errJetStreamUnavailable
	}
	return nil
}

// jsClusterNotAvail is nats-server's JSClusterNotAvailErr.
const jsClusterNotAvail = 10008
