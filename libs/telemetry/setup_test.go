package telemetry

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/b24hub/b24hub/libs/buildinfo"
	collectormetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// receiver is a minimal OTLP collector: it keeps the resources of the
// spans and metrics it is sent, over OTLP/HTTP or OTLP/gRPC.
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []*resourcepb.Resource
	metrics []*resourcepb.Resource
}

func (r *receiver) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		r.spans = append(r.spans, rs.Resource)
	}
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch req.URL.Path {
	case "/v1/traces":
		var m collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range m.ResourceSpans {
			r.spans = append(r.spans, rs.Resource)
		}
	case "/v1/metrics":
		var m collectormetrics.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rm := range m.ResourceMetrics {
			r.metrics = append(r.metrics, rm.Resource)
		}
	default:
		http.NotFound(w, req)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (r *receiver) got() (spans, metrics []*resourcepb.Resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.spans, r.metrics
}

func attr(res *resourcepb.Resource, key string) string {
	for _, kv := range res.GetAttributes() {
		if kv.Key == key {
			return kv.Value.GetStringValue()
		}
	}
	return ""
}

// otelEnv clears every OTEL_ variable of the test process and sets env.
func otelEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OTEL_") {
			t.Setenv(k, "")
		}
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

// emit makes one span and one measurement and flushes both by shutting
// down.
func emit(t *testing.T, tel *Telemetry) {
	t.Helper()
	ctx := context.Background()
	_, span := tel.TracerProvider.Tracer("test").Start(ctx, "op")
	span.End()
	c, err := tel.MeterProvider.Meter("test").Int64Counter("test.count")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(ctx, 1)
	if err := tel.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSetupExportsPerStandardEnvironment(t *testing.T) {
	httpRecv := &receiver{}
	hs := httptest.NewServer(httpRecv)
	t.Cleanup(hs.Close)

	grpcRecv := &receiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(gs, grpcRecv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	grpcURL := "http://" + lis.Addr().String()

	for _, tc := range []struct {
		name        string
		env         map[string]string
		recv        *receiver
		spans, mets bool
	}{
		{"no endpoint: nothing exported", map[string]string{}, httpRecv, false, false},
		{"endpoint: OTLP/HTTP by default", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": hs.URL}, httpRecv, true, false},
		{"OTLP/gRPC by protocol", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": grpcURL,
			"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_INSECURE": "true"}, grpcRecv, true, false},
		{"traces exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": hs.URL, "OTEL_TRACES_EXPORTER": "none"}, httpRecv, false, false},
		{"metrics pushed over OTLP too", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": hs.URL, "OTEL_METRICS_EXPORTER": "otlp"}, httpRecv, true, true},
		{"metrics exporter prometheus is /metrics", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": hs.URL, "OTEL_METRICS_EXPORTER": "prometheus"}, httpRecv, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			otelEnv(t, tc.env)
			tc.recv.mu.Lock()
			tc.recv.spans, tc.recv.metrics = nil, nil
			tc.recv.mu.Unlock()
			tel, err := Setup(context.Background(), "svc", os.Getenv)
			if err != nil {
				t.Fatal(err)
			}
			emit(t, tel)
			spans, mets := tc.recv.got()
			if (len(spans) > 0) != tc.spans || (len(mets) > 0) != tc.mets {
				t.Fatalf("exported %d span and %d metric batches, want spans %v, metrics %v", len(spans), len(mets), tc.spans, tc.mets)
			}
			for _, res := range append(spans, mets...) {
				if attr(res, "service.name") != "svc" || attr(res, "service.version") != buildinfo.Version() {
					t.Errorf("resource %v, want service.name svc and service.version %s", res.GetAttributes(), buildinfo.Version())
				}
			}
		})
	}
}

func TestSetupRejectsUnknownExporters(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"traces exporter":  {"OTEL_TRACES_EXPORTER": "zipkin-please"},
		"otlp protocol":    {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"},
		"metrics exporter": {"OTEL_METRICS_EXPORTER": "zipkin-please"},
	} {
		t.Run(name, func(t *testing.T) {
			otelEnv(t, env)
			tel, err := Setup(context.Background(), "svc", os.Getenv)
			if err == nil {
				_ = tel.Shutdown(context.Background())
				t.Fatal("Setup accepted an unknown exporter")
			}
			if !strings.Contains(err.Error(), "OTEL_") {
				t.Errorf("error %q does not name the setting", err)
			}
		})
	}
}

// TestMetricsCarryServiceVersion: Prometheus sees the resource as
// target_info, so dashboards can tell versions apart during a rollout.
func TestMetricsCarryServiceVersion(t *testing.T) {
	otelEnv(t, map[string]string{"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"})
	tel, err := Setup(context.Background(), "svc", os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{`service_version="` + buildinfo.Version() + `"`, `service_name="svc"`, `deployment_environment_name="test"`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, grepLines(body, "target_info"))
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
