package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// queryTracer records one client span per query, batch and COPY, but only
// inside a trace that is already recording (an event being processed), so
// background jobs and pool maintenance make no root spans. Statements are
// recorded without their arguments: values never reach the trace.
type queryTracer struct{ tp trace.TracerProvider }

var (
	_ pgx.QueryTracer    = queryTracer{}
	_ pgx.BatchTracer    = queryTracer{}
	_ pgx.CopyFromTracer = queryTracer{}
)

func (q queryTracer) start(ctx context.Context, conn *pgx.Conn, op, sql string) context.Context {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx
	}
	tp := q.tp
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	attrs := []attribute.KeyValue{attribute.String("db.system.name", "postgresql"), attribute.String("db.operation.name", op)}
	if sql != "" {
		attrs = append(attrs, attribute.String("db.query.text", sql))
	}
	if conn != nil {
		attrs = append(attrs, attribute.String("db.namespace", conn.Config().Database))
	}
	ctx, _ = tp.Tracer("github.com/b24hub/b24hub/libs/postgres").Start(ctx, "postgres "+op,
		trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(attrs...))
	return ctx
}

func end(ctx context.Context, err error) {
	span := trace.SpanFromContext(ctx)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// spanKey marks a context in which start began a span, so the End hooks
// never end the caller's own span when start skipped.
type spanKey struct{}

// TraceQueryStart implements pgx.QueryTracer.
func (q queryTracer) TraceQueryStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return mark(ctx, q.start(ctx, conn, verb(data.SQL), data.SQL))
}

// TraceQueryEnd implements pgx.QueryTracer.
func (queryTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	if ctx.Value(spanKey{}) != nil {
		end(ctx, data.Err)
	}
}

// TraceBatchStart implements pgx.BatchTracer.
func (q queryTracer) TraceBatchStart(ctx context.Context, conn *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return mark(ctx, q.start(ctx, conn, "BATCH", ""))
}

// TraceBatchQuery implements pgx.BatchTracer.
func (queryTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

// TraceBatchEnd implements pgx.BatchTracer.
func (queryTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchEndData) {
	if ctx.Value(spanKey{}) != nil {
		end(ctx, data.Err)
	}
}

// TraceCopyFromStart implements pgx.CopyFromTracer.
func (q queryTracer) TraceCopyFromStart(ctx context.Context, conn *pgx.Conn, data pgx.TraceCopyFromStartData) context.Context {
	return mark(ctx, q.start(ctx, conn, "COPY", "COPY "+data.TableName.Sanitize()))
}

// TraceCopyFromEnd implements pgx.CopyFromTracer.
func (queryTracer) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceCopyFromEndData) {
	if ctx.Value(spanKey{}) != nil {
		end(ctx, data.Err)
	}
}

// mark tags next when start began a span in it.
func mark(prev, next context.Context) context.Context {
	if next == prev {
		return prev
	}
	return context.WithValue(next, spanKey{}, true)
}

// verb is the statement's first keyword (SELECT, INSERT, BEGIN...), a
// low-cardinality span name.
func verb(sql string) string {
	sql = strings.TrimSpace(sql)
	for strings.HasPrefix(sql, "--") { // leading comment lines
		_, rest, _ := strings.Cut(sql, "\n")
		sql = strings.TrimSpace(rest)
	}
	w, _, _ := strings.Cut(sql, " ")
	w, _, _ = strings.Cut(w, "\n")
	w, _, _ = strings.Cut(w, "(")
	w = strings.ToUpper(strings.TrimRight(w, ";"))
	if w == "" || len(w) > 16 {
		return "QUERY"
	}
	return w
}
