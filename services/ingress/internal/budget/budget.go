// Package budget is the per-portal admission budget of the ingress: how
// many events, and how many bytes of them, one portal may store in
// JetStream. It is what keeps one portal (compromised, or a runaway
// business process) from filling the raw event stream that every portal
// shares.
//
// Bitrix24 never resends an event that was refused, so the budget is sized
// for floods, never for real peaks: each portal has a token bucket of
// events and one of bytes (golang.org/x/time/rate), whose burst holds a
// large import several times over. docs/security.md, "Tenant isolation",
// explains the numbers.
package budget

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Config sizes every portal's budget. DefaultConfig returns the defaults.
type Config struct {
	// EventsPerSecond is the sustained rate of events one portal may
	// store. Required, positive; default 100.
	EventsPerSecond float64
	// EventsBurst is how many events one portal may store at once above
	// the sustained rate. Required, positive; default 20,000, so a
	// 10,000-deal import in a minute (plus its follow-up events) fits.
	EventsBurst int
	// BytesPerSecond is the sustained rate of body bytes one portal may
	// store. Required, positive; default 256 KiB/s (100 events of 2.5 KiB).
	BytesPerSecond float64
	// BytesBurst is how many body bytes one portal may store at once above
	// the sustained rate. Required, at least the largest accepted body;
	// default 64 MiB (20,000 events of 3.2 KiB).
	BytesBurst int
}

// DefaultConfig is the budget of every portal unless configured otherwise.
func DefaultConfig() Config {
	return Config{EventsPerSecond: 100, EventsBurst: 20_000, BytesPerSecond: 256 << 10, BytesBurst: 64 << 20}
}

// Validate reports a budget that cannot work. maxBody is the largest body
// the ingress accepts: a bytes burst below it would refuse such a body
// forever.
func (c Config) Validate(maxBody int) error {
	var errs []error
	if c.EventsPerSecond <= 0 || c.EventsBurst <= 0 {
		errs = append(errs, fmt.Errorf("budget: events per second (%g) and burst (%d) must be positive", c.EventsPerSecond, c.EventsBurst))
	}
	if c.BytesPerSecond <= 0 || c.BytesBurst <= 0 {
		errs = append(errs, fmt.Errorf("budget: bytes per second (%g) and burst (%d) must be positive", c.BytesPerSecond, c.BytesBurst))
	}
	if c.BytesBurst < maxBody {
		errs = append(errs, fmt.Errorf("budget: bytes burst %d is below the largest accepted body (%d bytes)", c.BytesBurst, maxBody))
	}
	return errors.Join(errs...)
}

// Errors of Admit: the budget that is exhausted.
var (
	ErrEvents = errors.New("portal over its event budget")
	ErrBytes  = errors.New("portal over its byte budget")
)

// MaxPortals bounds the portals remembered. Only authenticated portals get
// a budget, so this is the number of installed portals sending at once; a
// portal pushed out comes back with a full budget, which only the traffic
// of 65,536 other portals in between can cause.
const MaxPortals = 1 << 16

// Budgets holds each portal's budget. It is safe for concurrent use.
type Budgets struct {
	cfg     Config
	mu      sync.Mutex
	portals *simplelru.LRU[string, *portal]
}

type portal struct{ events, bytes *rate.Limiter }

// New returns the budgets of cfg, which must be valid.
func New(cfg Config) *Budgets {
	portals, err := simplelru.NewLRU[string, *portal](MaxPortals, nil)
	if err != nil {
		panic("budget: " + err.Error()) // MaxPortals > 0
	}
	return &Budgets{cfg: cfg, portals: portals}
}

func (b *Budgets) portal(memberID string) *portal {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.portals.Get(memberID)
	if !ok {
		p = &portal{events: rate.NewLimiter(rate.Limit(b.cfg.EventsPerSecond), b.cfg.EventsBurst),
			bytes: rate.NewLimiter(rate.Limit(b.cfg.BytesPerSecond), b.cfg.BytesBurst)}
		b.portals.Add(memberID, p)
	}
	return p
}

// Admit spends one event and size bytes of memberID's budget at now, or
// spends nothing and returns ErrEvents or ErrBytes.
func (b *Budgets) Admit(memberID string, size int, now time.Time) error {
	p := b.portal(memberID)
	ev := p.events.ReserveN(now, 1)
	if !ev.OK() || ev.DelayFrom(now) > 0 {
		ev.CancelAt(now)
		return ErrEvents
	}
	by := p.bytes.ReserveN(now, size)
	if !by.OK() || by.DelayFrom(now) > 0 {
		by.CancelAt(now)
		ev.CancelAt(now) // a refused event costs the portal nothing
		return ErrBytes
	}
	return nil
}

// Usage is how much of their budgets the portals have spent.
type Usage struct {
	// Events and Bytes are the highest share (0 to 1) of its burst that
	// any one portal has spent: 1 means a portal is refused.
	Events, Bytes float64
	// OverHalf is the number of portals that spent more than half of
	// either burst.
	OverHalf int
}

// Usage reports the portals' spending at now. It visits every remembered
// portal, so call it per scrape, not per request.
func (b *Budgets) Usage(now time.Time) Usage {
	b.mu.Lock()
	ps := b.portals.Values()
	b.mu.Unlock()
	var u Usage
	for _, p := range ps {
		ev := 1 - p.events.TokensAt(now)/float64(b.cfg.EventsBurst)
		by := 1 - p.bytes.TokensAt(now)/float64(b.cfg.BytesBurst)
		u.Events, u.Bytes = max(u.Events, ev), max(u.Bytes, by)
		if ev > 0.5 || by > 0.5 {
			u.OverHalf++
		}
	}
	return u
}
