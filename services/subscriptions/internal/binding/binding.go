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

// Caller is the REST call the package needs; *bitrix.Client implements it.
type Caller interface {
	Call(ctx context.Context, method string, params, out any, opts ...bitrix.CallOption) error
}

// Row is one entry of event.get (§1.3). Online rows have a handler; offline
// rows have offline=1 and a connector id.
type Row struct {
	Event       string      `json:"event"`
	Handler     string      `json:"handler,omitempty"`
	AuthType    string      `json:"auth_type,omitempty"`
	Offline     flexBool    `json:"offline"`
	ConnectorID string      `json:"connector_id,omitempty"`
}

// Binding converts a row to the comparable form.
func (r Row) Binding() desired.Binding {
	b := desired.Binding{Event: strings.ToUpper(r.Event), Offline: bool(r.Offline)}
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
}

// Drift is the number of rows out of place.
func (p Plan) Drift() int { return len(p.Bind) + len(p.Unbind) }

// Diff compares the declared rows with the bound ones.
func Diff(want []desired.Binding, have []Row) Plan {
	bound := map[desired.Binding]bool{}
	for _, r := range have {
		bound[r.Binding()] = true
	}
	declared := map[desired.Binding]bool{}
	var p Plan
	for _, w := range want {
		declared[w] = true
		if bound[w] {
			p.InSync++
		} else {
			p.Bind = append(p.Bind, w)
		}
	}
	seen := map[desired.Binding]bool{}
	for _, r := range have {
		b := r.Binding()
		if !declared[b] && !seen[b] {
			seen[b] = true
			p.Unbind = append(p.Unbind, b)
		}
	}
	sortBindings(p.Bind)
	sortBindings(p.Unbind)
	return p
}

func sortBindings(bs []desired.Binding) {
	slices.SortFunc(bs, func(a, b desired.Binding) int { return strings.Compare(a.String(), b.String()) })
}

// Get reads the portal's bound rows with event.get.
func Get(ctx context.Context, c Caller) ([]Row, error) {
	var rows []Row
	if err := c.Call(ctx, "event.get", nil, &rows); err != nil {
		return nil, fmt.Errorf("event.get: %w", err)
	}
	return rows, nil
}

// Result is what Apply did.
type Result struct {
	Bound   []desired.Binding `json:"bound"`
	Unbound []desired.Binding `json:"unbound"`
	// Failed holds one message per row that could not be changed.
	Failed []string `json:"failed,omitempty"`
}

// Apply binds and unbinds what p asks for. It goes on after a failed row
// and returns every failure joined; a row that was already bound counts as
// bound.
func Apply(ctx context.Context, c Caller, p Plan) (Result, error) {
	var res Result
	var errs []error
	for _, b := range p.Bind {
		if err := Bind(ctx, c, b); err != nil {
			errs = append(errs, err)
			res.Failed = append(res.Failed, err.Error())
			continue
		}
		res.Bound = append(res.Bound, b)
	}
	for _, b := range p.Unbind {
		if err := Unbind(ctx, c, b); err != nil {
			errs = append(errs, err)
			res.Failed = append(res.Failed, err.Error())
			continue
		}
		res.Unbound = append(res.Unbound, b)
	}
	return res, errors.Join(errs...)
}

// Bind calls event.bind for b. "Handler already binded" and "Process of
// binding the handler has already started" are success: the row is (about
// to be) there, and the next check verifies it.
func Bind(ctx context.Context, c Caller, b desired.Binding) error {
	params := map[string]any{"event": b.Event}
	if b.Offline {
		params["event_type"] = "offline"
	} else {
		params["handler"] = b.Handler
	}
	err := c.Call(ctx, "event.bind", params, nil, bitrix.Idempotent(true))
	if err != nil && !AlreadyBound(err) {
		return fmt.Errorf("event.bind %s: %w", b, err)
	}
	return nil
}

// Unbind calls event.unbind for b. For an online row it passes the handler
// and no auth_type, which as an admin removes every user variant (§1.4).
func Unbind(ctx context.Context, c Caller, b desired.Binding) error {
	params := map[string]any{"event": b.Event}
	if b.Offline {
		params["event_type"] = "offline"
	} else {
		params["handler"] = b.Handler
	}
	if err := c.Call(ctx, "event.unbind", params, nil, bitrix.Idempotent(true)); err != nil {
		return fmt.Errorf("event.unbind %s: %w", b, err)
	}
	return nil
}

// AlreadyBound reports Bitrix24's answers to a repeated or concurrent bind.
func AlreadyBound(err error) bool {
	var e *bitrix.Error
	if !errors.As(err, &e) {
		return false
	}
	d := strings.ToLower(e.Description)
	return strings.Contains(d, "already binded") || strings.Contains(d, "already bound") ||
		strings.Contains(d, "binding the handler has already started")
}

// flexBool reads 0/1, "0"/"1" and true/false.
type flexBool bool

func (b *flexBool) UnmarshalJSON(data []byte) error {
	s := strings.Trim(string(data), `"`)
	switch s {
	case "1", "true", "Y":
		*b = true
	case "0", "false", "N", "", "null":
		*b = false
	default:
		return fmt.Errorf("binding: offline flag %s", data)
	}
	return nil
}
