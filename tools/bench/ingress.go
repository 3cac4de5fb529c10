package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/libs/telemetry"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

const (
	benchMember = "a223c6b3710f85df22e9377d6c4f7553"
	benchToken  = "51856fefc120afa4b628cc82d3935cce"
)

// dealUpdateBody is a ~1 KiB ONCRMDEALUPDATE as Bitrix24 sends it, unique per i.
func dealUpdateBody(i int64) []byte {
	id := strconv.FormatInt(1000+i, 10)
	ts := strconv.FormatInt(1736405807+i/1000, 10)
	return []byte("event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=" + id + "&ts=" + ts +
		"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lvs6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bexpires%5D=1736409407&auth%5Bexpires_in%5D=3600" +
		"&auth%5Bscope%5D=crm%2Ctask%2Ctasks_extended%2Cuser%2Cuser_brief%2Cuser_basic%2Ctelephony%2Ccall%2Cdisk%2Cim%2Cimbot%2Cimopenlines%2Cplacement%2Cbizproc%2Clists%2Centity%2Cdepartment%2Csonet_group%2Clandings%2Ccatalog%2Csale%2Ccalendar%2Cmailservice%2Cpay_system%2Csmile%2Clog%2Cforum%2Cevent_open_lines" +
		"&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bstatus%5D=F" +
		"&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F&auth%5Bmember_id%5D=" + benchMember +
		"&auth%5Buser_id%5D=1&auth%5Brefresh_token%5D=4s386p3q0tr8dy89xvmt96234v3dljg84s386p3q0tr8dy89xvmt96234v3dljg8" +
		"&auth%5Bapplication_token%5D=" + benchToken)
}

// startBroker embeds a nats-server with JetStream on file storage.
func startBroker() (*server.Server, func(), error) {
	dir, err := os.MkdirTemp("", "b24hub-bench-*")
	if err != nil {
		return nil, nil, err
	}
	ns, err := startBrokerIn(dir, -1)
	if err != nil {
		return nil, nil, err
	}
	return ns, func() { ns.Shutdown(); ns.WaitForShutdown(); os.RemoveAll(dir) }, nil
}

// startBrokerIn starts an embedded JetStream server with its store in dir
// on port (-1: a random one); the same dir and port restart a broker.
func startBrokerIn(dir string, port int) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true})
	if err != nil {
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		return nil, fmt.Errorf("nats-server not ready")
	}
	return ns, nil
}

// startBaseline is the minimal handler the ingress is compared with: read
// the body, publish it synchronously with a message id, answer 200.
func startBaseline(js jetstream.JetStream) (string, func(), error) {
	e := echo.New()
	var n atomic.Int64
	e.POST("/", func(c echo.Context) error {
		body, err := io.ReadAll(c.Request().Body)
		if err != nil {
			return c.NoContent(http.StatusBadRequest)
		}
		msg := &nats.Msg{Subject: eventbus.RawEvent("baseline", "ONCRMDEALUPDATE"), Data: body}
		if _, err := js.PublishMsg(c.Request().Context(), msg, jetstream.WithMsgID("b-"+strconv.FormatInt(n.Add(1), 10))); err != nil {
			return c.NoContent(http.StatusServiceUnavailable)
		}
		return c.NoContent(http.StatusOK)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: e}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/", func() { _ = srv.Close() }, nil
}

// ingressConfig is what `bench ingress` runs.
type ingressConfig struct {
	duration time.Duration // per load step
	conns    []int         // closed-loop steps
	// paths are measured at each closed-loop step, in this order in odd
	// rounds and in reverse in even ones (see ingressPaths); the first
	// one is what the others are compared with. One path alone is a run
	// for a CPU profile of that path.
	paths []string
	// rounds repeats the closed-loop steps, alternating the order.
	rounds int
	// steady runs the open-loop 2,000 req/s step (on baseline and ingress).
	steady bool
}

// ingressPaths are the servers `bench ingress` can measure.
var ingressPaths = []string{
	"baseline", // a bare echo handler publishing synchronously
	"ingress",  // the ingress, every feature on, on eventbus.Publisher
	"sync",     // the same ingress publishing synchronously (the baseline's publish path)
	"async",    // the same ingress on the library's PublishMsgAsync (asyncPublisher)
	"nohist",   // the ingress without its request-duration histogram
}

// benchIngress compares the ingress with the baseline. Every measured step
// runs on its own fresh broker: the raw stream's de-duplication window (10
// minutes) keeps every message id of the run in the broker's memory, so on
// one shared broker each step would find a bigger heap for the garbage
// collector to mark than the step before it (about a million ids by the
// end), and whichever path ran second would pay for the first one's ids.
func benchIngress(ctx context.Context, out io.Writer, cfg ingressConfig) error {
	// All features on: the OTel SDK records spans and metrics as in production.
	tel, err := telemetry.Setup(ctx, "ingress-bench", func(string) string { return "" })
	if err != nil {
		return err
	}
	defer func() { _ = tel.Shutdown(context.Background()) }()
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: benchMember, TokenSHA256: portals.HashToken(benchToken), Active: true}); err != nil {
		return err
	}
	var seq atomic.Int64
	// step measures one path under one load on a fresh broker, after a
	// second of warm-up at up to 16 connections.
	step := func(path string, load func(url string) result) (result, error) {
		ns, stopBroker, err := startBroker()
		if err != nil {
			return result{}, err
		}
		defer stopBroker()
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			return result{}, err
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return result{}, err
		}
		if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
			return result{}, err
		}
		var url string
		var stop func()
		switch path {
		case "baseline":
			url, stop, err = startBaseline(js)
		case "sync":
			url, stop, err = startIngress(ctx, nc, reg, tel, newSyncPublisher(js), nil)
		case "nohist":
			url, stop, err = startIngress(ctx, nc, reg, tel, nil, withoutDurationHistogram{otel.GetMeterProvider()})
		case "async":
			var pub *asyncPublisher
			if pub, err = newAsyncPublisher(nc, 2*time.Second); err == nil {
				url, stop, err = startIngress(ctx, nc, reg, tel, pub, nil)
			}
		default:
			url, stop, err = startIngress(ctx, nc, reg, tel, nil, nil)
		}
		if err != nil {
			return result{}, err
		}
		defer stop()
		closedLoop(ctx, url, 16, time.Second, dealUpdateBody, &seq)
		runtime.GC() // each step starts from the same, small heap
		return load(url), nil
	}
	closed := func(conns int) func(string) result {
		return func(url string) result { return closedLoop(ctx, url, conns, cfg.duration, dealUpdateBody, &seq) }
	}

	fmt.Fprintf(out, "ingress benchmark: ~%d-byte ONCRMDEALUPDATE, file-storage stream on a fresh broker per step, %s per step, paths %s, %d round(s)\n",
		len(dealUpdateBody(1)), cfg.duration, strings.Join(cfg.paths, ", "), cfg.rounds)
	// ratios[conns][path] collects, per round, path / the first path.
	type ratio struct{ throughput, p99, cpu []float64 }
	ratios := map[int]map[string]*ratio{}
	for round := 1; round <= cfg.rounds; round++ {
		order := slices.Clone(cfg.paths)
		if round%2 == 0 {
			slices.Reverse(order)
		}
		for _, conns := range cfg.conns {
			fmt.Fprintf(out, "\n%d connections, round %d:\n", conns, round)
			got := map[string]result{}
			for _, path := range order {
				r, err := step(path, closed(conns))
				if err != nil {
					return err
				}
				got[path] = r
				fmt.Fprintf(out, "  %-8s %s\n", path, r)
			}
			ref := got[cfg.paths[0]]
			for _, path := range cfg.paths[1:] {
				r := got[path]
				if ratios[conns] == nil {
					ratios[conns] = map[string]*ratio{}
				}
				x := ratios[conns][path]
				if x == nil {
					x = &ratio{}
					ratios[conns][path] = x
				}
				x.throughput = append(x.throughput, r.Throughput/ref.Throughput)
				x.p99 = append(x.p99, float64(r.P99)/float64(ref.P99))
				x.cpu = append(x.cpu, float64(r.CPU)/float64(ref.CPU))
				fmt.Fprintf(out, "  %s / %s: throughput %.2f×, p99 %.2f×, CPU per request %.2f×\n", path, cfg.paths[0],
					r.Throughput/ref.Throughput, float64(r.P99)/float64(ref.P99), float64(r.CPU)/float64(ref.CPU))
			}
		}
	}
	if len(cfg.paths) > 1 {
		fmt.Fprintf(out, "\n| connections | path / %s | throughput | p99 | CPU per request | rounds |\n|---|---|---|---|---|---|\n", cfg.paths[0])
		for _, conns := range cfg.conns {
			for _, path := range cfg.paths[1:] {
				x := ratios[conns][path]
				fmt.Fprintf(out, "| %d | %s | %s | %s | %s | %d |\n", conns, path, meanSE(x.throughput), meanSE(x.p99), meanSE(x.cpu), len(x.throughput))
			}
		}
	}
	if !cfg.steady {
		return nil
	}
	// The steady step runs on the baseline too: at a third of capacity the
	// tail is mostly the machine (GC, scheduling, neighbours), and the
	// baseline's shows how much of it.
	fmt.Fprintf(out, "\nsteady offered 2,000 req/s:\n")
	steady := func(url string) result { return openLoop(ctx, url, 2000, cfg.duration, dealUpdateBody, &seq) }
	for _, path := range []string{"baseline", "ingress"} {
		r, err := step(path, steady)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "  %-8s %s\n", path, r)
	}
	return nil
}

// meanSE formats the mean of xs and its standard error ("0.95× ± 0.02"),
// or the one value.
func meanSE(xs []float64) string {
	if len(xs) == 0 {
		return "—"
	}
	var sum float64
	for _, x := range xs {
		sum += x
	}
	mean := sum / float64(len(xs))
	if len(xs) == 1 {
		return fmt.Sprintf("%.2f×", mean)
	}
	var ss float64
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	se := math.Sqrt(ss/float64(len(xs)-1)) / math.Sqrt(float64(len(xs)))
	return fmt.Sprintf("%.2f× ± %.2f", mean, se)
}

// startIngress runs the ingress service on nc with every feature on; pub
// nil is its own publisher, mp nil the global meter provider.
func startIngress(ctx context.Context, nc *nats.Conn, reg *portals.Registry, tel *telemetry.Telemetry, pub ingress.Publisher, mp metric.MeterProvider) (string, func(), error) {
	// A per-portal budget the benchmark's single portal never exhausts:
	// it measures throughput, and the default budget would answer 429
	// after 20,000 events.
	unlimited := map[string]string{"B24HUB_INGRESS_PORTAL_EVENTS_PER_SECOND": "1e9", "B24HUB_INGRESS_PORTAL_EVENTS_BURST": "1000000000",
		"B24HUB_INGRESS_PORTAL_BYTES_PER_SECOND": "1e15", "B24HUB_INGRESS_PORTAL_BYTES_BURST": "2000000000"}
	icfg, err := ingress.ConfigFromEnv(func(k string) string { return unlimited[k] })
	if err != nil {
		return "", nil, err
	}
	icfg.Addr = "127.0.0.1:0"
	svc, err := ingress.New(icfg, ingress.Deps{NC: nc, Portals: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: tel.MetricsHandler(), Publisher: pub, MeterProvider: mp})
	if err != nil {
		return "", nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = svc.Run(sctx); close(done) }()
	return "http://" + svc.Addr() + "/bitrix24/events", func() { cancel(); <-done }, nil
}

// syncPublisher publishes as the baseline does, one synchronous
// js.PublishMsg per message, with the producer span, trace context and
// span attributes eventbus.Publisher adds, so the ingress running on it
// differs from the real one only in its publish path.
type syncPublisher struct {
	js     jetstream.JetStream
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

func newSyncPublisher(js jetstream.JetStream) syncPublisher {
	return syncPublisher{js: js, tracer: otel.GetTracerProvider().Tracer("bench/sync-publisher"), prop: eventbus.Propagator()}
}

func (p syncPublisher) Publish(ctx context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	ctx, span := p.tracer.Start(ctx, "publish b24.events", trace.WithSpanKind(trace.SpanKindProducer))
	defer span.End()
	msg := &nats.Msg{Subject: m.Subject, Data: m.Data, Header: m.Header}
	p.prop.Inject(ctx, eventbus.HeaderCarrier(msg.Header))
	ack, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(m.MsgID))
	if err != nil {
		span.RecordError(err)
		return nil, err
	}
	span.SetAttributes(
		attribute.String("messaging.system", "nats"),
		attribute.String("messaging.operation.type", "send"),
		attribute.String("messaging.operation.name", "publish"),
		attribute.String("messaging.destination.name", m.Subject),
		attribute.String("messaging.message.id", m.MsgID),
		attribute.Int("messaging.message.body.size", len(m.Data)),
		attribute.Int64("messaging.nats.stream_sequence", int64(ack.Sequence)),
		attribute.Bool("messaging.nats.duplicate", ack.Duplicate),
	)
	return ack, nil
}

// withoutDurationHistogram is the global meter provider with the ingress's
// http.server.request.duration replaced by a no-op: the ingress on it is
// the "nohist" path, measuring what the histogram costs.
type withoutDurationHistogram struct{ metric.MeterProvider }

func (p withoutDurationHistogram) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return meterWithoutDuration{p.MeterProvider.Meter(name, opts...)}
}

type meterWithoutDuration struct{ metric.Meter }

func (m meterWithoutDuration) Float64Histogram(name string, opts ...metric.Float64HistogramOption) (metric.Float64Histogram, error) {
	if name == "http.server.request.duration" {
		return noop.Float64Histogram{}, nil
	}
	// Passed on as they are: the instrument's options (buckets included)
	// are the ingress's.
	create := m.Meter.Float64Histogram
	return create(name, opts...)
}
