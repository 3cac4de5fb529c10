package ingress

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// RequestDurationBuckets are the boundaries, in seconds, of the
// http.server.request.duration histogram. An accepted event takes about a
// millisecond (one PubAck round trip), so the low end is finer than
// OpenTelemetry's HTTP default (from 5 ms); the top is past the 2 s publish
// timeout, after which the answer is a 503.
var RequestDurationBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// UnmatchedRoute is the http.route of requests no route matched.
//
// The attributes of http.server.request.duration are both bounded:
// http.route is the matched template (never the raw URL: a route token or a
// scanner's path would make a series each), UnmatchedRoute when none
// matched; http.response.status_class is the status's class ("2xx" …
// "5xx").
const UnmatchedRoute = "unmatched"

// requestDuration returns the middleware that records how long the server
// took to answer each request, by route and status class: the SLI an
// ingress latency objective is written on. It needs no request clone and no
// span (the handlers make their own); the attribute sets are built once,
// for the routes of e, so recording costs a clock read and one histogram
// update per request.
func requestDuration(e *echo.Echo, meter metric.Meter) (echo.MiddlewareFunc, error) {
	hist, err := meter.Float64Histogram("http.server.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from the request's arrival at the handler chain to its answer, by route template and status class."),
		metric.WithExplicitBucketBoundaries(RequestDurationBuckets...))
	if err != nil {
		return nil, err
	}
	type key struct {
		route string
		class int // status / 100
	}
	// Each value is the one option of a Record call, as a slice made once:
	// passing a lone option to the variadic Record would allocate one.
	opts := map[key][]metric.RecordOption{}
	routes := []string{UnmatchedRoute}
	for _, r := range e.Routes() {
		routes = append(routes, r.Path)
	}
	for _, r := range routes {
		for class := 1; class <= 5; class++ {
			opts[key{r, class}] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(
				attribute.String("http.route", r), attribute.String("http.response.status_class", strconv.Itoa(class)+"xx")))}
		}
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			err := next(c)
			status := c.Response().Status
			if err != nil && !c.Response().Committed {
				// Echo's error handler answers after the middleware: the
				// status is the error's.
				status = http.StatusInternalServerError
				var he *echo.HTTPError
				if errors.As(err, &he) {
					status = he.Code
				}
			}
			o, ok := opts[key{c.Path(), status / 100}]
			if !ok {
				o, ok = opts[key{UnmatchedRoute, status / 100}]
			}
			if ok {
				hist.Record(c.Request().Context(), time.Since(start).Seconds(), o...)
			}
			return err
		}
	}, nil
}
