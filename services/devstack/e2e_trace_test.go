package main

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestOneTracePerEvent follows one ONCRMDEALUPDATE through the whole stack
// with every service on a recording tracer provider: the ingress request,
// the publish to B24_EVENTS, the monitor's ledger write, deal-sync's
// processing with its REST call to the fake portal and its PostgreSQL
// queries, the domain change and the outcome it publishes, and the
// monitor's outcome write must all be one trace with correct parent/child
// links and messaging attributes; the ledger row carries that trace id.
//
// Services take the global provider when they are built, so this test sets
// it globally and must not run in parallel.
func TestOneTracePerEvent(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	installTracer = func() { otel.SetTracerProvider(tp) }
	t.Cleanup(func() { installTracer = nil; otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	s := startStack(t, stackOptions{env: map[string]string{"B24HUB_LOG_LEVEL": "debug"}})
	// A real change, so deal-sync mirrors it and publishes a DomainChange.
	s.fake.UpdateDeal(759, map[string]string{"STAGE_ID": "WON"}, false)
	r := s.post(s.dealUpdate(759))
	if r.status != http.StatusOK {
		t.Fatalf("ingress: %d %v", r.status, r.err)
	}

	// The ledger: the event row and deal-sync's delivery, both with a trace id.
	var eventTrace, deliveryTrace, status string
	s.eventually("deal-sync done in the ledger", 60*time.Second, func() bool {
		err := s.db.QueryRow(context.Background(), `SELECT e.trace_id, d.trace_id, d.status
			FROM monitor.webhook_events e JOIN monitor.deliveries d ON d.event_id = e.id AND d.consumer = 'deal-sync'
			WHERE e.id = $1`, r.id).Scan(&eventTrace, &deliveryTrace, &status)
		return err == nil && status == "done"
	})
	if eventTrace == "" || eventTrace != deliveryTrace {
		t.Fatalf("ledger trace ids: event %q, delivery %q", eventTrace, deliveryTrace)
	}
	// The API says the same.
	var api struct {
		TraceID string `json:"trace_id"`
	}
	if code := getJSON(t, "http://"+s.monitor.Addr()+"/api/v1/events/"+r.id, s.monitor.Token(), &api); code != http.StatusOK || api.TraceID != eventTrace {
		t.Fatalf("GET /api/v1/events/%s: %d trace %q, want %q", r.id, code, api.TraceID, eventTrace)
	}

	// Spans end a little after the ledger commit; wait for the last hop.
	want := []string{
		"POST /bitrix24/events", "publish b24.events", "process monitor-ledger", "process deal-sync",
		"bitrix ", pgSpans, "publish b24.changes", "publish b24.outcomes", "process monitor-outcomes",
	}
	var spans []sdktrace.ReadOnlySpan
	s.eventually("every hop's span recorded", 30*time.Second, func() bool {
		spans = inTrace(rec.Ended(), eventTrace)
		for _, w := range want {
			if find(spans, w) == nil {
				return false
			}
		}
		return true
	})
	t.Logf("trace %s:\n%s", eventTrace, describe(spans))

	// One root, the ingress's server span; every other span's parent is in
	// the trace.
	ids := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, sp := range spans {
		ids[sp.SpanContext().SpanID()] = sp
	}
	var roots []string
	for _, sp := range spans {
		if !sp.Parent().IsValid() {
			roots = append(roots, sp.Name())
		} else if _, ok := ids[sp.Parent().SpanID()]; !ok {
			t.Errorf("span %q: parent %s is not in the trace", sp.Name(), sp.Parent().SpanID())
		}
	}
	if len(roots) != 1 || roots[0] != "POST /bitrix24/events" {
		t.Errorf("roots %v, want the ingress request only", roots)
	}

	server := find(spans, "POST /bitrix24/events")
	publish := find(spans, "publish b24.events")
	ledger := find(spans, "process monitor-ledger")
	deal := find(spans, "process deal-sync")
	outcome := find(spans, "publish b24.outcomes")
	outcomes := find(spans, "process monitor-outcomes")
	change := find(spans, "publish b24.changes")

	kind := func(sp sdktrace.ReadOnlySpan, k trace.SpanKind) {
		t.Helper()
		if sp.SpanKind() != k {
			t.Errorf("%q: kind %s, want %s", sp.Name(), sp.SpanKind(), k)
		}
	}
	childOf := func(child, parent sdktrace.ReadOnlySpan) {
		t.Helper()
		if child.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Errorf("%q: parent %s, want %q (%s)", child.Name(), child.Parent().SpanID(), parent.Name(), parent.SpanContext().SpanID())
		}
	}
	linksTo := func(sp, target sdktrace.ReadOnlySpan) {
		t.Helper()
		for _, l := range sp.Links() {
			if l.SpanContext.SpanID() == target.SpanContext().SpanID() {
				return
			}
		}
		t.Errorf("%q has no link to %q", sp.Name(), target.Name())
	}
	kind(server, trace.SpanKindServer)
	kind(publish, trace.SpanKindProducer)
	kind(deal, trace.SpanKindConsumer)
	kind(ledger, trace.SpanKindConsumer)
	kind(outcome, trace.SpanKindProducer)
	kind(outcomes, trace.SpanKindConsumer)
	kind(change, trace.SpanKindProducer)
	childOf(publish, server)
	childOf(deal, publish)
	linksTo(deal, publish)
	childOf(ledger, publish)
	linksTo(ledger, publish)
	childOf(outcome, deal)
	childOf(outcomes, outcome)
	childOf(change, deal)
	for _, sp := range spans {
		switch {
		case strings.HasPrefix(sp.Name(), "bitrix "):
			kind(sp, trace.SpanKindClient)
			childOf(sp, deal)
		case isPostgres(sp):
			kind(sp, trace.SpanKindClient)
			// Batch queries sit under their batch's span: look past them.
			p := ids[sp.Parent().SpanID()]
			for p != nil && isPostgres(p) {
				p = ids[p.Parent().SpanID()]
			}
			if p == nil || !strings.HasPrefix(p.Name(), "process ") {
				t.Errorf("%q: parent %v, want a process span", sp.Name(), p)
			}
		}
	}
	if n := countUnder(spans, pgSpans, deal); n == 0 {
		t.Error("no PostgreSQL span under deal-sync's process span")
	}
	if n := countUnder(spans, pgSpans, ledger); n == 0 {
		t.Error("no PostgreSQL span under the ledger's process span")
	}

	// Messaging attributes (semantic conventions, messaging.system=nats).
	attrs := func(sp sdktrace.ReadOnlySpan, kv map[string]string) {
		t.Helper()
		got := map[string]string{}
		for _, a := range sp.Attributes() {
			got[string(a.Key)] = a.Value.String()
		}
		for k, v := range kv {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", sp.Name(), k, got[k], v)
			}
		}
	}
	subject := "b24.events." + s.demo.MemberID + ".ONCRMDEALUPDATE"
	attrs(publish, map[string]string{"messaging.system": "nats", "messaging.operation.type": "send",
		"messaging.operation.name": "publish", "messaging.destination.name": subject, "messaging.message.id": r.id})
	attrs(deal, map[string]string{"messaging.system": "nats", "messaging.operation.type": "process",
		"messaging.consumer.group.name": "deal-sync", "messaging.destination.name": subject,
		"messaging.message.id": r.id, "messaging.nats.stream": "B24_EVENTS", "messaging.nats.num_delivered": "1",
		"b24.member_id": s.demo.MemberID, "b24.event": "ONCRMDEALUPDATE", "b24.entity_id": "759"})
	attrs(ledger, map[string]string{"messaging.system": "nats", "messaging.operation.type": "process",
		"messaging.consumer.group.name": "monitor-ledger", "messaging.destination.name": subject,
		"messaging.message.id": r.id, "messaging.nats.stream": "B24_EVENTS"})
	attrs(outcomes, map[string]string{"messaging.system": "nats", "messaging.consumer.group.name": "monitor-outcomes",
		"messaging.nats.stream": "B24_OUTCOMES"})
	attrs(server, map[string]string{"http.route": "/bitrix24/events", "b24.member_id": s.demo.MemberID, "b24.event": "ONCRMDEALUPDATE"})

	// Logs about this event carry its trace id.
	if !strings.Contains(s.logs.String(), `"trace_id":"`+eventTrace+`"`) {
		t.Errorf("no log line carries trace_id %s", eventTrace)
	}
	s.checkRunners()
}

func inTrace(spans []sdktrace.ReadOnlySpan, traceID string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.SpanContext().TraceID().String() == traceID {
			out = append(out, sp)
		}
	}
	return out
}

// pgSpans stands for the PostgreSQL client spans (otelpgx) in find and
// countUnder: they are named after the operation ("SELECT", "pool.acquire")
// and recognised by db.system.name.
const pgSpans = "\x00postgresql"

func isPostgres(sp sdktrace.ReadOnlySpan) bool {
	for _, kv := range sp.Attributes() {
		if kv.Key == "db.system.name" && kv.Value.AsString() == "postgresql" {
			return true
		}
	}
	return false
}

// matches reports whether sp's name starts with prefix, or sp is a
// PostgreSQL span and prefix is pgSpans.
func matches(sp sdktrace.ReadOnlySpan, prefix string) bool {
	if prefix == pgSpans {
		return isPostgres(sp)
	}
	return strings.HasPrefix(sp.Name(), prefix)
}

// find returns the first span whose name starts with prefix.
func find(spans []sdktrace.ReadOnlySpan, prefix string) sdktrace.ReadOnlySpan {
	for _, sp := range spans {
		if matches(sp, prefix) {
			return sp
		}
	}
	return nil
}

func countUnder(spans []sdktrace.ReadOnlySpan, prefix string, parent sdktrace.ReadOnlySpan) int {
	n := 0
	for _, sp := range spans {
		if matches(sp, prefix) && sp.Parent().SpanID() == parent.SpanContext().SpanID() {
			n++
		}
	}
	return n
}

// describe renders the trace as an indented tree, for the test log.
func describe(spans []sdktrace.ReadOnlySpan) string {
	children := map[trace.SpanID][]sdktrace.ReadOnlySpan{}
	var roots []sdktrace.ReadOnlySpan
	for _, sp := range spans {
		if sp.Parent().IsValid() {
			children[sp.Parent().SpanID()] = append(children[sp.Parent().SpanID()], sp)
		} else {
			roots = append(roots, sp)
		}
	}
	var b strings.Builder
	var walk func(sp sdktrace.ReadOnlySpan, depth int)
	walk = func(sp sdktrace.ReadOnlySpan, depth int) {
		fmt.Fprintf(&b, "%s%s [%s] %s\n", strings.Repeat("  ", depth), sp.Name(), sp.SpanKind(), sp.EndTime().Sub(sp.StartTime()).Round(time.Microsecond))
		cs := children[sp.SpanContext().SpanID()]
		sort.Slice(cs, func(i, j int) bool { return cs[i].StartTime().Before(cs[j].StartTime()) })
		for _, c := range cs {
			walk(c, depth+1)
		}
	}
	for _, r := range roots {
		walk(r, 0)
	}
	return b.String()
}

// TestBatchedEventsLinkToTheirBatch: two events of one portal arriving
// together are handled in one deal-sync batch, whose REST and database work
// runs under a "process batch" span (a trace of its own, linked to both
// messages). Each event's trace must lead there: its message span links to
// the batch span, and the batch span links to it.
func TestBatchedEventsLinkToTheirBatch(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	installTracer = func() { otel.SetTracerProvider(tp) }
	t.Cleanup(func() { installTracer = nil; otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	s := startStack(t, stackOptions{})
	s.fake.UpdateDeal(757, map[string]string{"STAGE_ID": "WON"}, false)
	s.fake.UpdateDeal(758, map[string]string{"STAGE_ID": "WON"}, false)
	// Both inside deal-sync's 200 ms batch window.
	a, b := s.post(s.dealUpdate(757)), s.post(s.dealUpdate(758))
	if a.status != http.StatusOK || b.status != http.StatusOK {
		t.Fatalf("ingress: %d, %d", a.status, b.status)
	}
	var batch sdktrace.ReadOnlySpan
	var msgs []sdktrace.ReadOnlySpan
	s.eventually("both events processed in one batch", 30*time.Second, func() bool {
		msgs, batch = nil, nil
		for _, sp := range rec.Ended() {
			id := attr(sp, "messaging.message.id")
			if sp.Name() == "process deal-sync" && (id == a.id || id == b.id) {
				msgs = append(msgs, sp)
			}
		}
		if len(msgs) != 2 {
			return false
		}
		for _, sp := range rec.Ended() {
			if sp.Name() == "process batch deal-sync" && linked(sp, msgs[0]) && linked(sp, msgs[1]) {
				batch = sp
			}
		}
		return batch != nil
	})
	if batch.Parent().IsValid() {
		t.Errorf("the batch span has a parent %s; it must be a root linked to its messages", batch.Parent().SpanID())
	}
	for _, m := range msgs {
		if !linked(m, batch) {
			t.Errorf("message span of %s does not link to its batch", attr(m, "messaging.message.id"))
		}
		if m.SpanContext().TraceID() == batch.SpanContext().TraceID() {
			t.Error("a message span shares the batch's trace")
		}
	}
	var rest int
	for _, sp := range rec.Ended() {
		if strings.HasPrefix(sp.Name(), "bitrix ") && sp.Parent().SpanID() == batch.SpanContext().SpanID() {
			rest++
		}
	}
	if rest == 0 {
		t.Error("no REST span under the batch span")
	}
	t.Logf("batch trace %s:\n%s", batch.SpanContext().TraceID(), describe(inTrace(rec.Ended(), batch.SpanContext().TraceID().String())))
}

func attr(sp sdktrace.ReadOnlySpan, key string) string {
	for _, a := range sp.Attributes() {
		if string(a.Key) == key {
			return a.Value.String()
		}
	}
	return ""
}

func linked(from, to sdktrace.ReadOnlySpan) bool {
	for _, l := range from.Links() {
		if l.SpanContext.SpanID() == to.SpanContext().SpanID() {
			return true
		}
	}
	return false
}
