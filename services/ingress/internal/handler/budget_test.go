package handler

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric/noop"
)

// TestLegitimatePeakAccepted is the half of tenant isolation that must
// never fail: a real portal's peak, a 10,000-deal import within a minute,
// is accepted in full by the default budget. The handler's clock is a fake
// advanced 6 ms per event (10,000 events over 60 s), so the test simulates
// the minute without taking it; the limiter only ever sees that clock.
func TestLegitimatePeakAccepted(t *testing.T) {
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		t.Fatal(err)
	}
	pub := &recordingPublisher{}
	h, err := New(Config{}, reg, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	h.now = func() time.Time { return now }
	e := echo.New()
	h.Register(e)
	const deals = 10_000
	for i := range deals {
		// A deal update of ~1.5 KiB, each a distinct deal.
		body := valid(fmt.Sprintf("&data%%5BFIELDS%%5D%%5BTITLE%%5D=deal-%d&pad=%0900d", i, i))
		if rec := serve(e, "/bitrix24/events", form, []byte(body)); rec.Code != http.StatusOK {
			t.Fatalf("event %d of the import, %s into it: %d %s", i, time.Duration(i)*6*time.Millisecond, rec.Code, rec.Body)
		}
		now = now.Add(6 * time.Millisecond)
	}
	if n := pub.count(); n != deals {
		t.Fatalf("stored %d events, want %d", n, deals)
	}
}

// TestOverBudgetIs429: past its burst a portal's events get 429 with the
// budget named, and nothing is published for them.
func TestOverBudgetIs429(t *testing.T) {
	reg := portals.NewRegistry()
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken(token), Active: true}); err != nil {
		t.Fatal(err)
	}
	pub := &recordingPublisher{}
	h, err := New(Config{PortalBudget: budgetConfig(3)}, reg, pub, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	for i := range 5 {
		rec := serve(e, "/bitrix24/events", form, []byte(valid(fmt.Sprintf("&n=%d", i))))
		want := http.StatusOK
		if i >= 3 {
			want = http.StatusTooManyRequests
		}
		if rec.Code != want {
			t.Fatalf("event %d: %d %s, want %d", i, rec.Code, rec.Body, want)
		}
		if want == http.StatusTooManyRequests && rec.Body.String() != `{"error":"portal over its event budget, retry later"}` {
			t.Errorf("429 body %s", rec.Body)
		}
	}
	if n := pub.count(); n != 3 {
		t.Errorf("published %d events, want the 3 within budget", n)
	}
}

// budgetConfig is a budget of burst events that do not refill within a
// test.
func budgetConfig(burst int) budget.Config {
	return budget.Config{EventsPerSecond: 1e-6, EventsBurst: burst, BytesPerSecond: 1, BytesBurst: 1 << 30}
}
