// Package labelcap bounds the values of a metric label whose values come
// from outside (a portal's member_id): the first Max distinct values get
// their own series, every later one shares [Other]. Spans and logs keep the
// real value; only what a meter exports is bounded.
package labelcap

import "sync"

// Other is the label value of every value past a Cap's bound.
const Other = "other"

// MaxPortals is how many distinct portals get their own portal label in
// one process (per meter provider): the bitrix client's bitrix.portal and
// the consumer runtime's portal label on consumer.dependency.down.
const MaxPortals = 200

// Cap admits the first max distinct values of a label and maps the rest
// to Other. It is safe for concurrent use.
type Cap struct {
	mu   sync.Mutex
	max  int
	seen map[string]bool
}

// New returns a Cap that admits max distinct values.
func New(max int) *Cap { return &Cap{max: max, seen: map[string]bool{}} }

// Value returns v while v is one of the first max values seen, else Other.
// A value once admitted stays admitted, so a series raised under a value
// is lowered under the same one.
func (c *Cap) Value(v string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[v] {
		return v
	}
	if len(c.seen) >= c.max {
		return Other
	}
	c.seen[v] = true
	return v
}
