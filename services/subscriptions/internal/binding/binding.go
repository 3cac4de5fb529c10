// Package binding keeps a portal's event.bind rows equal to its declared
// ones: it reads them with event.get, computes the difference, binds what
// is missing, unbinds what is not declared, and treats Bitrix24's "Handler
// already binded" answer as success (event.bind is not idempotent, §1.2).
package binding

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
)

// Client is the part of the REST client the package needs; *bitrix.Client
// implements it.
type Client interface {
	EventBindings(ctx context.Context) ([]bitrix.EventBinding, error)
	BindEvent(ctx context.Context, b bitrix.EventBinding) error
	UnbindEvent(ctx context.Context, b bitrix.EventBinding) (int, error)
}

var _ Client = (*bitrix.Client)(nil)

// Of converts a bound row to the comparable form.
func Of(r bitrix.EventBinding) desired.Binding {
	b := desired.Binding{Event: strings.ToUpper(r.Event), Offline: r.Offline}
	if !b.Offline {
		b.Handler = r.Handler
	}
	return b
}

// Plan is the difference between declared and bound rows of one portal.
type Plan struct {
	// Bind lists the declared rows that are missing.
	Bind []desired.Binding `json:"bind"`
	// Unbind lists the bound rows that are not declared.
	Unbind []desired.Binding `json:"unbind"`
	// InSync counts the rows that are both declared and bound.
	InSync int `json:"in_sync"`

	// rows keeps the bound rows behind each Unbind entry: event.unbind
	// needs their auth_type to match (§1.4).
	rows map[desired.Binding][]bitrix.EventBinding
}

// Drift is the number of rows out of place.
func (p Plan) Drift() int { return len(p.Bind) + len(p.Unbind) }

// Diff compares the declared rows with the bound ones.
func Diff(want []desired.Binding, have []bitrix.EventBinding) Plan {
	bound := map[desired.Binding]bool{}
	for _, r := range have {
		bound[Of(r)] = true
	}
	declared := map[desired.Binding]bool{}
	p := Plan{rows: map[desired.Binding][]bitrix.EventBinding{}}
	for _, w := range want {
		if declared[w] {
			continue
		}
		declared[w] = true
		if bound[w] {
			p.InSync++
		} else {
			p.Bind = append(p.Bind, w)
		}
	}
	for _, r := range have {
		b := Of(r)
		if declared[b] {
			continue
		}
		if _, seen := p.rows[b]; !seen {
			p.Unbind = append(p.Unbind, b)
		}
		p.rows[b] = append(p.rows[b], r)
	}
	sortBindings(p.Bind)
	sortBindings(p.Unbind)
	return p
}

func sortBindings(bs []desired.Binding) {
	slices.SortFunc(bs, func(a, b desired.Binding) int { return strings.Compare(a.String(), b.String()) })
}

// Check reads the portal's rows and returns the plan that makes them equal
// to want.
func Check(ctx context.Context, c Client, want []desired.Binding) (Plan, error) {
	have, err := c.EventBindings(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("event.get: %w", err)
	}
	return Diff(want, have), nil
}

// Result is what Apply did.
type Result struct {
	Bound   []desired.Binding `json:"bound"`
	Unbound []desired.Binding `json:"unbound"`
	// Failed holds one message per row that could not be changed.
	Failed []string `json:"failed,omitempty"`
}

// Repaired counts the rows changed.
func (r Result) Repaired() int { return len(r.Bound) + len(r.Unbound) }

// Apply binds and unbinds what p asks for. It goes on after a failed row
// and returns every failure joined. A row that was already bound counts as
// bound (the client maps "Handler already binded" to success).
func Apply(ctx context.Context, c Client, p Plan) (Result, error) {
	var res Result
	var errs []error
	fail := func(err error) {
		errs = append(errs, err)
		res.Failed = append(res.Failed, err.Error())
	}
	for _, b := range p.Bind {
		row := bitrix.EventBinding{Event: b.Event, Handler: b.Handler, Offline: b.Offline}
		if err := c.BindEvent(ctx, row); err != nil {
			fail(fmt.Errorf("event.bind %s: %w", b, err))
			continue
		}
		res.Bound = append(res.Bound, b)
	}
	for _, b := range p.Unbind {
		rows := p.rows[b]
		if len(rows) == 0 { // a plan decoded from JSON: unbind the default variant
			rows = []bitrix.EventBinding{{Event: b.Event, Handler: b.Handler, Offline: b.Offline}}
		}
		ok := true
		for _, r := range rows {
			if _, err := c.UnbindEvent(ctx, r); err != nil {
				fail(fmt.Errorf("event.unbind %s: %w", b, err))
				ok = false
			}
		}
		if ok {
			res.Unbound = append(res.Unbound, b)
		}
	}
	return res, errors.Join(errs...)
}
