package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// NewLogger returns a JSON logger writing to w at level whose records carry
// trace_id and span_id from the context they are logged with. Log with the
// *Context methods (InfoContext, ...) so the ids are found.
//
// Every line has one key per attribute: an attribute added again (the
// local stack names each service's logger with With("service", ...) on top
// of its own, a service adds its name again) replaces the earlier one, as
// log pipelines that reject or mangle duplicate JSON keys need.
func NewLogger(w io.Writer, level slog.Leveler, service string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(&logHandler{inner: h, frames: []frame{{}}}).With("service", service)
}

// frame is the attributes added at one group level: frames[0] is the top
// level, each WithGroup opens the next.
type frame struct {
	group string
	attrs []slog.Attr
}

// logHandler keeps the attributes of With itself, instead of letting the
// JSON handler pre-format them, so that it can replace an attribute added
// twice, and adds trace_id and span_id of the record's context.
type logHandler struct {
	inner  slog.Handler // has no attributes or groups of its own
	frames []frame      // never empty
}

// Enabled implements slog.Handler.
func (h *logHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	frames := append([]frame(nil), h.frames...)
	last := &frames[len(frames)-1]
	last.attrs = merge(last.attrs, as)
	return &logHandler{inner: h.inner, frames: frames}
}

// WithGroup implements slog.Handler.
func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	frames := append(append([]frame(nil), h.frames...), frame{group: name})
	return &logHandler{inner: h.inner, frames: frames}
}

// Handle implements slog.Handler.
func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	frames := append([]frame(nil), h.frames...)
	if r.NumAttrs() > 0 {
		rec := make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool { rec = append(rec, a); return true })
		last := &frames[len(frames)-1]
		last.attrs = merge(last.attrs, rec)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		frames[0].attrs = merge(frames[0].attrs, []slog.Attr{
			slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String())})
	}
	// Nest from the innermost group outwards.
	var nested []slog.Attr
	for i := len(frames) - 1; i >= 0; i-- {
		attrs := append([]slog.Attr(nil), frames[i].attrs...)
		if i < len(frames)-1 && len(nested) > 0 {
			attrs = merge(attrs, []slog.Attr{{Key: frames[i+1].group, Value: slog.GroupValue(nested...)}})
		}
		nested = attrs
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(nested...)
	return h.inner.Handle(ctx, out)
}

// merge returns base with add appended, an attribute of add replacing the
// one of the same key in base (or earlier in add) in place. The attributes
// of an inline group (a group without a key) are merged one by one, since
// the JSON handler writes them at this level.
func merge(base, add []slog.Attr) []slog.Attr {
	out := append(make([]slog.Attr, 0, len(base)+len(add)), base...)
	for _, a := range add {
		if a.Key == "" {
			if v := a.Value.Resolve(); v.Kind() == slog.KindGroup {
				out = merge(out, v.Group())
				continue
			}
		}
		replaced := false
		for i := range out {
			if out[i].Key == a.Key && a.Key != "" {
				out[i], replaced = a, true
				break
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return out
}

// ParseLevel maps "debug", "info", "warn", "error" to a level; anything else is info.
func ParseLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
