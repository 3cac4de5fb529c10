package handler

import (
	"context"

	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// withBudgetDefaults fills the zero fields of a portal budget from
// budget.DefaultConfig.
func withBudgetDefaults(c budget.Config) budget.Config {
	d := budget.DefaultConfig()
	if c.EventsPerSecond == 0 {
		c.EventsPerSecond = d.EventsPerSecond
	}
	if c.EventsBurst == 0 {
		c.EventsBurst = d.EventsBurst
	}
	if c.BytesPerSecond == 0 {
		c.BytesPerSecond = d.BytesPerSecond
	}
	if c.BytesBurst == 0 {
		c.BytesBurst = d.BytesBurst
	}
	return c
}

// Attribute sets of the budget gauges, built once.
var (
	budgetEvents = metric.WithAttributeSet(attribute.NewSet(attribute.String("budget", "events")))
	budgetBytes  = metric.WithAttributeSet(attribute.NewSet(attribute.String("budget", "bytes")))
)

// observeBudgets exports, per scrape, how close the portals are to their
// budgets, so an alert fires before any event is refused. The series are
// aggregates (the highest share spent by any portal, the number of portals
// past half), never one per member id: their number stays fixed however
// many portals there are. Which portal it is shows in the 429 answers'
// spans (b24.member_id).
func (h *Handler) observeBudgets(meter metric.Meter) error {
	used, err := meter.Float64ObservableGauge("ingress.portal_budget.used",
		metric.WithDescription("Highest share (0 to 1) of its burst that any one portal has spent, by budget (events, bytes); at 1 its events get 429"))
	if err != nil {
		return err
	}
	over, err := meter.Int64ObservableGauge("ingress.portal_budget.over_half",
		metric.WithDescription("Portals that have spent more than half of their event or byte burst"), metric.WithUnit("{portal}"))
	if err != nil {
		return err
	}
	_, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		u := h.budgets.Usage(h.now())
		o.ObserveFloat64(used, u.Events, budgetEvents)
		o.ObserveFloat64(used, u.Bytes, budgetBytes)
		o.ObserveInt64(over, int64(u.OverHalf))
		return nil
	}, used, over)
	return err
}
