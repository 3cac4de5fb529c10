package ingress_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress"
	"github.com/nats-io/nats.go/jetstream"
)

// TestFloodContained is the other half of tenant isolation: one portal
// sending far beyond its budget gets 429 for the excess, while another
// portal's events, interleaved with the flood, keep getting 200 and are
// stored in JetStream. The budget is shrunk by configuration (a burst of
// 50 that does not refill during the test) so the flood is 4 times the
// burst rather than millions of events.
func TestFloodContained(t *testing.T) {
	const (
		flooder, flooderToken = "f10000000000000000000000000000ff", "f1000000000000000000000000000tok"
		quiet, quietToken     = "c0000000000000000000000000000000", "c000000000000000000000000000tok0"
	)
	srv := natstest.Start(t)
	nc, js := srv.JetStream(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	reg := portals.NewRegistry()
	for m, tok := range map[string]string{flooder: flooderToken, quiet: quietToken} {
		if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: m, TokenSHA256: portals.HashToken(tok), Active: true}); err != nil {
			t.Fatal(err)
		}
	}
	env := map[string]string{"B24HUB_INGRESS_PORTAL_EVENTS_BURST": "50", "B24HUB_INGRESS_PORTAL_EVENTS_PER_SECOND": "0.000001"}
	cfg, err := ingress.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Addr = "127.0.0.1:0"
	svc, err := ingress.New(cfg, ingress.Deps{NC: nc, Portals: reg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	url := "http://" + svc.Addr() + "/bitrix24/events"

	codes := map[string]map[int]int{flooder: {}, quiet: {}}
	for i := range 200 {
		code, body := post(t, url, "application/x-www-form-urlencoded", event(flooder, flooderToken, i))
		codes[flooder][code]++
		if code == http.StatusTooManyRequests && !strings.Contains(body, "event budget") {
			t.Fatalf("429 without its reason: %s", body)
		}
		if i%10 == 0 {
			code, body := post(t, url, "application/x-www-form-urlencoded", event(quiet, quietToken, i))
			if code != http.StatusOK {
				t.Fatalf("quiet portal's event %d during the flood: %d %s", i, code, body)
			}
			codes[quiet][code]++
		}
	}
	if got := codes[flooder]; got[http.StatusOK] != 50 || got[http.StatusTooManyRequests] != 150 {
		t.Fatalf("flooder got %v, want 50 × 200 and 150 × 429", got)
	}
	s, err := js.Stream(ctx, eventbus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(eventbus.EventsPrefix+".>"))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[eventbus.RawEvent(quiet, "ONCRMDEALUPDATE")]; n != 20 {
		t.Errorf("quiet portal has %d events stored, want its 20", n)
	}
	if n := info.State.Subjects[eventbus.RawEvent(flooder, "ONCRMDEALUPDATE")]; n != 50 {
		t.Errorf("flooder has %d events stored, want its budget of 50", n)
	}
}

func event(member, tok string, id int) string {
	v := url.Values{}
	v.Set("event", "ONCRMDEALUPDATE")
	v.Set("data[FIELDS][ID]", strconv.Itoa(id))
	v.Set("ts", "1736405807")
	v.Set("auth[member_id]", member)
	v.Set("auth[application_token]", tok)
	return v.Encode()
}

func TestPortalBudgetConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		ok   bool
	}{
		{"defaults", nil, true},
		{"custom", map[string]string{"B24HUB_INGRESS_PORTAL_EVENTS_PER_SECOND": "250", "B24HUB_INGRESS_PORTAL_BYTES_BURST": "1048576"}, true},
		{"not a number", map[string]string{"B24HUB_INGRESS_PORTAL_EVENTS_PER_SECOND": "fast"}, false},
		{"zero burst", map[string]string{"B24HUB_INGRESS_PORTAL_EVENTS_BURST": "0"}, false},
		{"negative rate", map[string]string{"B24HUB_INGRESS_PORTAL_BYTES_PER_SECOND": "-1"}, false},
		{"byte burst below the body limit", map[string]string{"B24HUB_INGRESS_PORTAL_BYTES_BURST": "1000"}, false},
	} {
		_, err := ingress.ConfigFromEnv(func(k string) string { return tc.env[k] })
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
