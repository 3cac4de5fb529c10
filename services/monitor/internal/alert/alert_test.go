package alert_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/monitor/internal/alert"
	"github.com/b24hub/b24hub/services/monitor/internal/ledger"
)

func mustRules(t *testing.T, y string) alert.Rules {
	t.Helper()
	r, err := alert.ParseRules([]byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDefaultRulesParse(t *testing.T) {
	r := alert.DefaultRules()
	if len(r.Rules) != 7 || r.Rules[0].Event != "ONCRMDEALUPDATE" || time.Duration(r.Rules[0].MaxQuiet) != 10*time.Minute {
		t.Fatalf("defaults = %+v", r.Rules)
	}
	// The error-kind rules wait for what consumers report.
	want := map[string]string{"overload-limit": eventbus.ErrorKindOverload, "reauthorization": eventbus.ErrorKindReauthorize}
	for _, rule := range r.Rules {
		if rule.Kind != alert.KindErrorKind {
			continue
		}
		if want[rule.Name] != rule.ErrorKind {
			t.Errorf("default rule %s counts error_kind %q, want %q", rule.Name, rule.ErrorKind, want[rule.Name])
		}
		delete(want, rule.Name)
	}
	if len(want) != 0 {
		t.Errorf("default error_kind rules missing: %v", want)
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := map[string]string{
		"unknown kind":      "rules: [{name: a, kind: nope}]",
		"silence no event":  "rules: [{name: a, kind: silence, max_quiet: 1m}]",
		"missing calendar":  "rules: [{name: a, kind: silence, event: E, max_quiet: 1m, calendar: x}]",
		"bad zone":          "calendars: {x: {timezone: Mars/Base}}",
		"bad day":           "calendars: {x: {days: [someday]}}",
		"duplicate rule":    "rules: [{name: a, kind: dead_letters}, {name: a, kind: dead_letters}]",
		"webhook no url":    "sinks: [{type: webhook}]",
		"unknown field":     "rulez: []",
		"bad duration":      "evaluate_every: soon",
		"bad share":         "rules: [{name: a, kind: error_rate, threshold: 3}]",
		"no error kind":     "rules: [{name: a, kind: error_kind}]",
		"unknown kind name": "rules: [{name: a, kind: error_kind, error_kind: overload_limit}]",
		"fraction of one":   "rules: [{name: a, kind: retention, fraction: 1}]",
		"negative fraction": "rules: [{name: a, kind: retention, fraction: -0.2}]",
	}
	for name, y := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := alert.ParseRules([]byte(y), func(string) string { return "" }); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestCalendar(t *testing.T) {
	r := mustRules(t, `
calendars:
  msk: {timezone: Europe/Moscow, days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00", holidays: ["2026-03-09"]}
  night: {timezone: UTC, days: [mon], start: "22:00", end: "06:00"}
rules:
  - {name: s, kind: silence, event: E, max_quiet: 10m, calendar: msk}
  - {name: n, kind: silence, event: E, max_quiet: 10m, calendar: night}
`)
	msk, _ := time.LoadLocation("Europe/Moscow")
	at := func(s string) time.Time {
		t, err := time.ParseInLocation("2006-01-02 15:04", s, msk)
		if err != nil {
			panic(err)
		}
		return t
	}
	cal := r.Calendars["msk"]
	tests := []struct {
		name     string
		from, to time.Time
		want     time.Duration
	}{
		{"inside one day", at("2026-03-02 10:00"), at("2026-03-02 10:12"), 12 * time.Minute},
		{"before opening", at("2026-03-02 07:00"), at("2026-03-02 09:05"), 5 * time.Minute},
		{"over a night", at("2026-03-02 17:55"), at("2026-03-03 09:05"), 10 * time.Minute},
		{"over a weekend", at("2026-03-06 17:59"), at("2026-03-10 09:01"), 2 * time.Minute}, // Monday 9th is a holiday
		{"closed day", at("2026-03-07 10:00"), at("2026-03-07 16:00"), 0},
		{"reversed", at("2026-03-02 11:00"), at("2026-03-02 10:00"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cal.BusinessDuration(tt.from, tt.to); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
	if !cal.IsOpen(at("2026-03-02 09:00")) || cal.IsOpen(at("2026-03-02 18:00")) || cal.IsOpen(at("2026-03-09 12:00")) {
		t.Error("IsOpen wrong at the edges or on a holiday")
	}
	night := r.Calendars["night"]
	mon := time.Date(2026, 3, 2, 23, 0, 0, 0, time.UTC)
	if !night.IsOpen(mon) || !night.IsOpen(mon.Add(6*time.Hour)) || night.IsOpen(mon.Add(8*time.Hour)) {
		t.Error("overnight window wrong")
	}
	var always *alert.Calendar
	if always.BusinessDuration(mon, mon.Add(time.Hour)) != time.Hour || !always.IsOpen(mon) {
		t.Error("nil calendar is not always open")
	}
}

func TestEvaluate(t *testing.T) {
	rules := mustRules(t, `
calendars: {biz: {timezone: UTC, start: "09:00", end: "18:00"}}
rules:
  - {name: quiet, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m, calendar: biz}
  - {name: quiet-m9, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m, portals: [m9]}
  - {name: probe, kind: probe, max_quiet: 15m, portals: [m1]}
  - {name: errors, kind: error_rate, window: 10m, threshold: 0.5, min_attempts: 4}
  - {name: dead, kind: dead_letters, window: 10m}
  - {name: overload, kind: error_kind, error_kind: overload, window: 10m}
  - {name: onprem-quiet, kind: silence, event: ONAFTERCRMDEALUPDATE, max_quiet: 10m}
`)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC) // Monday noon
	in := alert.Input{Now: now, Since: now.Add(-time.Hour),
		LastSeen: []ledger.LastSeen{
			{Portal: "m1", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: now.Add(-11 * time.Minute), Domain: "a.bitrix24.ru"},
			{Portal: "m2", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: now.Add(-time.Minute)},
			{Portal: "m2", EventType: "ONCRMDEALUPDATE", Source: "replay", LastReceivedAt: now},
			{Portal: "m3", EventType: "ONCRMDEALUPDATE", Source: "replay", LastReceivedAt: now},
			{Portal: "m1", EventType: "ONAPPTEST", Source: "push", LastReceivedAt: now.Add(-5 * time.Minute)},
			// An on-premise installation's forwarded events count by default.
			{Portal: "crm-main", EventType: "ONAFTERCRMDEALUPDATE", Source: "onprem", LastReceivedAt: now.Add(-11 * time.Minute)},
		},
		Counts: map[time.Duration][]ledger.OutcomeCount{10 * time.Minute: {
			{Consumer: "deal-sync", Portal: "m1", Kind: "done", N: 2},
			{Consumer: "deal-sync", Portal: "m1", Kind: "retry", ErrorKind: "overload", N: 3},
			{Consumer: "tasks", Portal: "m1", Kind: "done", N: 9},
			{Consumer: "tasks", Portal: "m1", Kind: "dead", N: 1},
			{Consumer: "tasks", Portal: "m1", Kind: "dead_letter", N: 1},
		}},
	}
	got := map[string]bool{}
	for _, o := range alert.Evaluate(rules, in) {
		got[o.Key] = o.Firing
	}
	want := map[string]bool{
		"quiet/m1": true, "quiet/m2": false, // m3 only has replays: not watched
		"quiet-m9/m9":      true, // named, never seen, quiet since start
		"probe/m1":         false,
		"errors/deal-sync": true, "errors/tasks": false,
		"dead/tasks":            true,
		"overload/m1":           true,
		"onprem-quiet/crm-main": true,
	}
	for k, v := range want {
		if f, ok := got[k]; !ok || f != v {
			t.Errorf("%s: firing=%v observed=%v, want firing=%v", k, f, ok, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("observed %v", got)
	}
	// Saturday: the clock is stopped, so the same gap does not fire.
	in.Now = time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC)
	in.LastSeen[0].LastReceivedAt = in.Now.Add(-3 * time.Hour)
	for _, o := range alert.Evaluate(rules, in) {
		if o.Key == "quiet/m1" && o.Firing {
			t.Error("silence fired outside business hours")
		}
	}
}

func TestTransition(t *testing.T) {
	now := time.Now()
	fire := alert.Observation{Key: "r/t", Rule: "r", Target: "t", Firing: true, Message: "bad"}
	calm := alert.Observation{Key: "r/t", Rule: "r", Target: "t", Message: "ok"}
	if _, store := alert.Transition(nil, calm, now); store {
		t.Error("a calm observation created an alert")
	}
	a, store := alert.Transition(nil, fire, now)
	if !store || a.State != alert.StateFiring || !a.StartedAt.Equal(now) {
		t.Fatalf("new firing = %+v", a)
	}
	b, _ := alert.Transition(&a, fire, now.Add(time.Minute))
	if b.State != alert.StateFiring || !b.StartedAt.Equal(now) {
		t.Errorf("still firing = %+v", b)
	}
	c, store := alert.Transition(&b, calm, now.Add(2*time.Minute))
	if !store || c.State != alert.StateResolved || c.ResolvedAt == nil {
		t.Errorf("resolved = %+v", c)
	}
	d, _ := alert.Transition(&c, fire, now.Add(3*time.Minute))
	if d.State != alert.StateFiring || !d.StartedAt.Equal(now.Add(3*time.Minute)) {
		t.Errorf("re-fired = %+v", d)
	}
}

// Fakes for the engine.

type fakeSource struct{ seen []ledger.LastSeen }

func (f *fakeSource) LastSeen(context.Context) ([]ledger.LastSeen, error) { return f.seen, nil }
func (f *fakeSource) OutcomeCounts(context.Context, time.Time, time.Time) ([]ledger.OutcomeCount, error) {
	return nil, nil
}

type memState struct {
	mu     sync.Mutex
	alerts map[string]alert.Alert
}

func (m *memState) List(_ context.Context, firingOnly bool, _ int) ([]alert.Alert, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []alert.Alert
	for _, a := range m.alerts {
		if !firingOnly || a.State == alert.StateFiring {
			n := map[string]string{}
			for k, v := range a.Notified {
				n[k] = v
			}
			a.Notified = n
			out = append(out, a)
		}
	}
	return out, nil
}

func (m *memState) Save(_ context.Context, as []alert.Alert) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range as {
		m.alerts[a.Key] = a
	}
	return nil
}

type recSink struct {
	fail int
	got  []string
}

func (r *recSink) Name() string { return "rec" }
func (r *recSink) Send(_ context.Context, a alert.Alert) error {
	if r.fail > 0 {
		r.fail--
		return errors.New("sink down")
	}
	r.got = append(r.got, a.Key+" "+a.State)
	return nil
}

type fixedLease bool

func (l fixedLease) Hold(context.Context) bool { return bool(l) }
func (l fixedLease) Release(context.Context)   {}

func TestEngineNotifiesTransitionsOnce(t *testing.T) {
	rules := mustRules(t, `
calendars: {biz: {timezone: UTC, start: "09:00", end: "18:00"}}
rules: [{name: quiet, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m, calendar: biz}]
`)
	now := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC) // Monday, before opening
	clock := func() time.Time { return now }
	src := &fakeSource{seen: []ledger.LastSeen{{Portal: "m1", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: now}}}
	state := &memState{alerts: map[string]alert.Alert{}}
	sink := &recSink{fail: 1}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := alert.NewEngine(alert.EngineConfig{Rules: rules, Src: src, State: state, Sinks: []alert.Sink{sink},
		Lease: fixedLease(true), Now: clock, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(d time.Duration) {
		now = now.Add(d)
		_ = e.Tick(ctx)
	}
	step(0)
	step(time.Hour + 9*time.Minute) // 09:09: 9 business minutes quiet
	if len(sink.got) != 0 {
		t.Fatalf("fired early: %v", sink.got)
	}
	step(2 * time.Minute) // 09:11: fires, but the sink fails once
	step(time.Minute)     // retried
	step(time.Minute)     // still firing: no repeat
	src.seen[0].LastReceivedAt = now
	step(time.Minute) // events are back
	step(time.Minute)
	if strings.Join(sink.got, ",") != "quiet/m1 firing,quiet/m1 resolved" {
		t.Fatalf("notifications = %v", sink.got)
	}
	// A replica without the lease evaluates nothing.
	follower, _ := alert.NewEngine(alert.EngineConfig{Rules: rules, Src: src, State: state, Sinks: []alert.Sink{sink},
		Lease: fixedLease(false), Now: clock, Log: log})
	src.seen[0].LastReceivedAt = now.Add(-time.Hour)
	_ = follower.Tick(ctx)
	if len(sink.got) != 2 {
		t.Fatalf("follower notified: %v", sink.got)
	}
}

// livePortals is a hand-written alert.Portals.
type livePortals struct {
	mu  sync.Mutex
	set map[string]bool
}

func (l *livePortals) Watched(m string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.set[m]
}

func (l *livePortals) remove(m string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.set, m)
}

func TestEvaluateWatchesOnlyLivePortals(t *testing.T) {
	rules := mustRules(t, `
rules:
  - {name: quiet, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m}
  - {name: quiet-named, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m, portals: [gone, m2]}
  - {name: probe, kind: probe, max_quiet: 15m}
  - {name: overload, kind: error_kind, error_kind: overload, window: 10m}
  - {name: dead, kind: dead_letters, window: 10m}
`)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	old := now.Add(-time.Hour)
	in := alert.Input{Now: now, Since: old,
		LastSeen: []ledger.LastSeen{
			{Portal: "gone", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: old},
			{Portal: "gone", EventType: "ONAPPTEST", Source: "push", LastReceivedAt: old},
			{Portal: "m2", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: old},
		},
		Counts: map[time.Duration][]ledger.OutcomeCount{10 * time.Minute: {
			{Consumer: "deal-sync", Portal: "gone", Kind: "retry", ErrorKind: "overload", N: 3},
			{Consumer: "deal-sync", Portal: "gone", Kind: "dead_letter", N: 1},
		}},
	}
	tests := []struct {
		name    string
		watched func(string) bool
		want    []string
	}{
		{"no registry watches every portal", nil,
			[]string{"dead/deal-sync", "overload/gone", "probe/gone", "quiet-named/gone", "quiet-named/m2", "quiet/gone", "quiet/m2"}},
		{"a gone portal is not watched", func(m string) bool { return m == "m2" },
			[]string{"dead/deal-sync", "quiet-named/m2", "quiet/m2"}},
		{"nothing registered", func(string) bool { return false }, []string{"dead/deal-sync"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in.Watched = tt.watched
			var got []string
			for _, o := range alert.Evaluate(rules, in) {
				if !o.Firing {
					t.Errorf("%s observed but not firing", o.Key)
				}
				got = append(got, o.Key)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("observed %v, want %v", got, tt.want)
			}
		})
	}
}

// TestEngineResolvesAlertsOfRemovedPortal: once a portal leaves the live
// registry its firing silence alert resolves, saying why, and it is not
// evaluated again.
func TestEngineResolvesAlertsOfRemovedPortal(t *testing.T) {
	rules := mustRules(t, `rules: [{name: quiet, kind: silence, event: ONCRMDEALUPDATE, max_quiet: 10m}]`)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{seen: []ledger.LastSeen{
		{Portal: "m1", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: now.Add(-time.Hour)},
		{Portal: "m2", EventType: "ONCRMDEALUPDATE", Source: "push", LastReceivedAt: now.Add(-time.Hour)},
	}}
	state := &memState{alerts: map[string]alert.Alert{}}
	sink := &recSink{}
	live := &livePortals{set: map[string]bool{"m1": true, "m2": true}}
	e, err := alert.NewEngine(alert.EngineConfig{Rules: rules, Src: src, State: state, Sinks: []alert.Sink{sink},
		Lease: fixedLease(true), Portals: live, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_ = e.Tick(ctx)
	live.remove("m1")
	_ = e.Tick(ctx)
	_ = e.Tick(ctx)
	slices.Sort(sink.got)
	if want := []string{"quiet/m1 firing", "quiet/m1 resolved", "quiet/m2 firing"}; !slices.Equal(sink.got, want) {
		t.Fatalf("notifications = %v, want %v", sink.got, want)
	}
	if a := state.alerts["quiet/m1"]; a.State != alert.StateResolved || !strings.Contains(a.Message, "no longer registered") {
		t.Errorf("m1 alert = %+v", a)
	}
	if a := state.alerts["quiet/m2"]; a.State != alert.StateFiring {
		t.Errorf("m2 alert = %+v", a)
	}
}

// ages is a hand-written alert.AgeSource.
type ages struct {
	mu  sync.Mutex
	now []alert.UnfinishedAge
	err error
}

func (a *ages) UnfinishedAges(context.Context) ([]alert.UnfinishedAge, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now, a.err
}

// TestRetentionAlertFiresBeforeEventsAgeOut moves the clock while a
// consumer's oldest unfinished event stays put: the alert fires once the
// event is older than half the stream's max age (well before the stream
// drops it), survives a failed measurement, and resolves once the
// consumer catches up.
func TestRetentionAlertFiresBeforeEventsAgeOut(t *testing.T) {
	rules := mustRules(t, `rules: [{name: near-retention, kind: retention, fraction: 0.5}]`)
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	stuck := now
	src := &ages{now: []alert.UnfinishedAge{
		{Consumer: "deal-sync", Stream: "B24_EVENTS", Oldest: stuck, MaxAge: 7 * 24 * time.Hour},
		{Consumer: "telephony", Stream: "B24_EVENTS", MaxAge: 7 * 24 * time.Hour}, // nothing unfinished
		{Consumer: "archive", Stream: "B24_ARCHIVE", Oldest: stuck},               // unlimited retention
	}}
	state := &memState{alerts: map[string]alert.Alert{}}
	sink := &recSink{}
	e, err := alert.NewEngine(alert.EngineConfig{Rules: rules, Src: &fakeSource{}, State: state, Sinks: []alert.Sink{sink},
		Lease: fixedLease(true), Ages: src, Now: func() time.Time { return now }, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(d time.Duration) {
		now = now.Add(d)
		if err := e.Tick(ctx); err != nil {
			t.Fatal(err)
		}
	}
	step(0)
	step(84*time.Hour - time.Minute) // just under 3.5 days
	if len(sink.got) != 0 {
		t.Fatalf("fired early: %v", sink.got)
	}
	step(2 * time.Minute)
	if strings.Join(sink.got, ",") != "near-retention/deal-sync firing" {
		t.Fatalf("notifications = %v", sink.got)
	}
	a := state.alerts["near-retention/deal-sync"]
	if !strings.Contains(a.Message, "runbook: "+alert.RetentionRunbook) || !strings.Contains(a.Message, "2026-03-09T12:00:00Z") {
		t.Errorf("message = %q", a.Message)
	}
	src.mu.Lock()
	src.err = errors.New("nats: timeout")
	src.mu.Unlock()
	step(time.Minute) // a failed measurement keeps the last one: still firing, no repeat
	src.mu.Lock()
	src.err, src.now[0].Oldest = nil, time.Time{}
	src.mu.Unlock()
	step(time.Minute)
	if strings.Join(sink.got, ",") != "near-retention/deal-sync firing,near-retention/deal-sync resolved" {
		t.Fatalf("notifications = %v", sink.got)
	}
}
