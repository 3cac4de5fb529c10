package bitrix

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestMetricLabelsStayBounded feeds the client's telemetry more portals,
// methods and error codes than any bound allows, as a hostile or very large
// deployment would, and counts the label values it exports.
func TestMetricLabelsStayBounded(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	tel, err := newTelemetry(nil, mp)
	if err != nil {
		t.Fatal(err)
	}
	// A second client on the same provider shares the portal bound.
	tel2, err := newTelemetry(nil, mp)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := range MaxPortalLabels + 50 {
		portal := fmt.Sprintf("member%04d", i)
		method := fmt.Sprintf("crm.item%d.get", i)
		if i%3 == 0 {
			method = "CRM.Deal.Get" // known, in another case
		}
		tt := tel
		if i%2 == 1 {
			tt = tel2
		}
		_, span := tt.start(ctx, method, portal)
		e := &Error{Status: 400, Code: fmt.Sprintf("WEIRD_CODE_%d", i)}
		tt.attemptFailed(ctx, method, portal, e)
		tt.waited(ctx, portal, time.Millisecond)
		tt.finish(ctx, span, method, portal, 400, now, now.Add(time.Second), e)
		tt.refresh(ctx, portal, e)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	values := labelValues(rm)
	portals := values["bitrix.portal"]
	if len(portals) != MaxPortalLabels+1 || !portals[OtherLabel] || !portals["member0000"] {
		t.Errorf("%d bitrix.portal values (other: %v), want the first %d portals and %q", len(portals), portals[OtherLabel], MaxPortalLabels, OtherLabel)
	}
	if got := sortedSet(values["bitrix.method"]); !slices.Equal(got, []string{"crm.deal.get", OtherLabel}) {
		t.Errorf("bitrix.method values %v, want crm.deal.get and %q", got, OtherLabel)
	}
	for _, key := range []string{"bitrix.error.code", "bitrix.outcome"} {
		if got := sortedSet(values[key]); !slices.Equal(got, []string{"permanent"}) {
			t.Errorf("%s values %v: an unknown code must be reported as its kind", key, got)
		}
	}
}

func TestCodeLabel(t *testing.T) {
	for _, tc := range []struct {
		e    *Error
		want string
	}{
		{&Error{Status: 503, Code: CodeQueryLimitExceeded}, CodeQueryLimitExceeded},
		{&Error{Status: 401, Code: "expired_token"}, "expired_token"},
		{&Error{Status: 400, Code: "ERROR_ENTITY_NOT_FOUND"}, "ERROR_ENTITY_NOT_FOUND"},
		{&Error{Status: 400, Code: "made up by the portal"}, "permanent"},
		{&Error{Status: 400}, "permanent"},
	} {
		if got := codeLabel(tc.e); got != tc.want {
			t.Errorf("codeLabel(%+v) = %q, want %q", tc.e, got, tc.want)
		}
	}
}

func labelValues(rm metricdata.ResourceMetrics) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	add := func(set attribute.Set) {
		for _, kv := range set.ToSlice() {
			if out[string(kv.Key)] == nil {
				out[string(kv.Key)] = map[string]bool{}
			}
			out[string(kv.Key)][kv.Value.Emit()] = true
		}
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range d.DataPoints {
					add(dp.Attributes)
				}
			}
		}
	}
	return out
}

func sortedSet(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestHistogramBuckets: both client histograms are in seconds with the
// seconds buckets declared here, not the SDK default (0, 5, 10, 25, ...).
func TestHistogramBuckets(t *testing.T) {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	tel, err := newTelemetry(nil, sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	_, span := tel.start(ctx, "crm.deal.get", "m")
	tel.waited(ctx, "m", 20*time.Millisecond)
	tel.finish(ctx, span, "crm.deal.get", "m", 200, now, now.Add(80*time.Millisecond), nil)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	want := map[string][]float64{"bitrix.client.duration": DurationBuckets, "bitrix.client.limiter.wait": WaitBuckets}
	seen := 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			h, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				continue
			}
			seen++
			if m.Unit != "s" {
				t.Errorf("%s unit %q, want s", m.Name, m.Unit)
			}
			if !slices.Equal(h.DataPoints[0].Bounds, want[m.Name]) {
				t.Errorf("%s buckets %v, want %v", m.Name, h.DataPoints[0].Bounds, want[m.Name])
			}
		}
	}
	if seen != len(want) {
		t.Errorf("%d histograms, want %d", seen, len(want))
	}
}

// TestKnownMethodsCoverTheCode: every REST method the code names as a
// literal (in this package and in the services) has its own label, so no
// call of ours is hidden under "other".
func TestKnownMethodsCoverTheCode(t *testing.T) {
	callers := map[string]int{"Call": 1, "Do": 1, "do": 1, "List": 1, "Walk": 1, "GetMany": 1}
	found := map[string]string{}
	for _, root := range []string{".", filepath.Join("..", "..", "services")} {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules") {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
			if err != nil {
				return err
			}
			lit := func(e ast.Expr) {
				if b, ok := e.(*ast.BasicLit); ok && b.Kind == token.STRING {
					if s, err := strconv.Unquote(b.Value); err == nil {
						found[s] = p
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
						if i, ok := callers[sel.Sel.Name]; ok && len(n.Args) > i {
							lit(n.Args[i])
						}
					}
				case *ast.KeyValueExpr:
					if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Method" {
						lit(n.Value)
					}
				}
				return true
			})
			return nil
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if len(found) < 10 {
		t.Fatalf("found only %d method literals %v: the scan is broken", len(found), found)
	}
	for m, where := range found {
		if !strings.Contains(m, ".") && m != "batch" {
			continue // not a REST method (e.g. an HTTP verb passed to another Do)
		}
		if methodLabel(m) == OtherLabel {
			t.Errorf("%s calls %q, which is not in KnownMethods", where, m)
		}
	}
}
