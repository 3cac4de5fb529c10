package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// uniqueKeys decodes one JSON value from dec and fails on an object that
// repeats a key at any depth (encoding/json would silently keep the last).
func uniqueKeys(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			key := k.(string)
			if seen[key] {
				return fmt.Errorf("duplicate key %q in %s", key, path)
			}
			seen[key] = true
			if err := uniqueKeys(dec, path+"."+key); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := uniqueKeys(dec, path+"[]"); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

func TestUniqueKeysRejectsDuplicates(t *testing.T) {
	for line, dup := range map[string]bool{
		`{"service":"devstack","service":"monitor"}`: true,
		`{"a":{"b":1,"b":2}}`:                        true,
		`{"a":[{"b":1,"b":2}]}`:                      true,
		`{"service":"monitor","a":{"service":1}}`:    false,
	} {
		err := uniqueKeys(json.NewDecoder(strings.NewReader(line)), "$")
		if (err != nil) != dup {
			t.Errorf("uniqueKeys(%s) = %v, want duplicate %v", line, err, dup)
		}
	}
}

// TestLogLinesHaveOneKeyPerAttribute: the local stack wraps each service's
// logger in With("service", ...) and a service may add its own name again;
// every line must still carry each key once, the innermost value winning.
func TestLogLinesHaveOneKeyPerAttribute(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{1, 2, 3}, SpanID: trace.SpanID{4, 5, 6}, TraceFlags: trace.FlagsSampled})
	traced := trace.ContextWithSpanContext(context.Background(), sc)
	for _, tc := range []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any
	}{
		{"service named three times", func(l *slog.Logger) {
			l.With("service", "monitor").With("service", "monitor").Info("hi")
		}, map[string]any{"service": "monitor", "msg": "hi"}},
		{"record attribute replaces a With attribute", func(l *slog.Logger) {
			l.With("consumer", "a", "n", 1).Info("hi", "consumer", "b")
		}, map[string]any{"service": "devstack", "consumer": "b", "n": float64(1)}},
		{"repeated in one call", func(l *slog.Logger) {
			l.Info("hi", "k", 1, "k", 2)
		}, map[string]any{"k": float64(2)}},
		{"inline group", func(l *slog.Logger) {
			l.Info("hi", slog.Group("", slog.String("service", "inline")))
		}, map[string]any{"service": "inline"}},
		{"trace ids once", func(l *slog.Logger) {
			l.With("trace_id", "stale").InfoContext(traced, "hi")
		}, map[string]any{"trace_id": sc.TraceID().String(), "span_id": sc.SpanID().String()}},
		{"groups keep their own keys", func(l *slog.Logger) {
			l.With("a", 0).WithGroup("g").With("a", 1, "b", 1).Info("hi", "a", 2, slog.Group("h", "x", 1))
		}, map[string]any{"service": "devstack", "a": float64(0),
			"g": map[string]any{"a": float64(2), "b": float64(1), "h": map[string]any{"x": float64(1)}}}},
		{"empty group dropped", func(l *slog.Logger) {
			l.WithGroup("g").Info("hi")
		}, map[string]any{"msg": "hi"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(NewLogger(&buf, slog.LevelInfo, "devstack"))
			line := buf.Bytes()
			if err := uniqueKeys(json.NewDecoder(bytes.NewReader(line)), "$"); err != nil {
				t.Fatalf("%v in %s", err, line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if fmt.Sprint(got[k]) != fmt.Sprint(v) {
					t.Errorf("%s = %v, want %v in %s", k, got[k], v, line)
				}
			}
			if tc.name == "empty group dropped" {
				if _, ok := got["g"]; ok {
					t.Errorf("empty group written: %s", line)
				}
			}
		})
	}
}

func TestLoggerLevel(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, slog.LevelWarn, "x")
	l.Info("hidden")
	l.Warn("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "shown") {
		t.Fatalf("level not applied: %s", buf.String())
	}
}

func BenchmarkLogger(b *testing.B) {
	l := NewLogger(io.Discard, slog.LevelInfo, "bench").With("consumer", "deal-sync", "portal", "p")
	for b.Loop() {
		l.Info("processed", "event", "ONCRMDEALUPDATE", "attempt", 1)
	}
}
