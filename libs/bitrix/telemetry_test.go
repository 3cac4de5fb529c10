package bitrix_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

func TestSpansAndMetrics(t *testing.T) {
	ctx := context.Background()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{}, bitrix.WithTracerProvider(tp), bitrix.WithMeterProvider(mp))
	id := bitrix.ID(p.CreateDeal(nil, false))

	if _, err := c.GetDeal(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetDeal(ctx, 999); err == nil {
		t.Fatal("want not found")
	}

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans", len(spans))
	}
	ok, bad := spans[0], spans[1]
	if ok.Name() != "bitrix crm.deal.get" || ok.SpanKind() != trace.SpanKindClient || ok.Status().Code == codes.Error {
		t.Fatalf("span %s %v %v", ok.Name(), ok.SpanKind(), ok.Status())
	}
	want := map[attribute.Key]string{"bitrix.method": "crm.deal.get", "bitrix.portal": p.MemberID(), "http.response.status_code": "200"}
	for k, v := range want {
		if got := attr(ok.Attributes(), k); got != v {
			t.Errorf("span attribute %s = %q, want %q", k, got, v)
		}
	}
	if bad.Status().Code != codes.Error || attr(bad.Attributes(), "http.response.status_code") != "400" || attr(bad.Attributes(), "bitrix.error.kind") != "not_found" {
		t.Fatalf("error span %v %v", bad.Status(), bad.Attributes())
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	calls := sumByAttr(t, rm, "bitrix.client.calls", "bitrix.outcome")
	if calls["ok"] != 1 || calls["not_found"] != 1 {
		t.Fatalf("calls by outcome %v", calls)
	}
	if errs := sumByAttr(t, rm, "bitrix.client.errors", "bitrix.error.kind"); errs["not_found"] != 1 {
		t.Fatalf("errors %v", errs)
	}
	if !hasMetric(rm, "bitrix.client.limiter.wait") || !hasMetric(rm, "bitrix.client.duration") {
		t.Fatal("limiter wait or duration histogram missing")
	}
}

func attr(kvs []attribute.KeyValue, k attribute.Key) string {
	for _, kv := range kvs {
		if kv.Key == k {
			return kv.Value.String()
		}
	}
	return ""
}

func hasMetric(rm metricdata.ResourceMetrics, name string) bool {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return true
			}
		}
	}
	return false
}

func sumByAttr(t *testing.T, rm metricdata.ResourceMetrics, name string, key attribute.Key) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok {
				t.Fatalf("%s is %T", name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				v, _ := dp.Attributes.Value(key)
				out[v.String()] += dp.Value
			}
		}
	}
	return out
}
