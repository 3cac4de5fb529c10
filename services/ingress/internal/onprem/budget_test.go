package onprem

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/portals"
	"github.com/b24hub/b24hub/services/ingress/internal/budget"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/metric/noop"
)

// TestOverBudgetAcksOnlyTheAdmittedPrefix: an installation past its
// portal budget gets only the admitted prefix acknowledged (the module
// keeps the rest in its spool and sends it again), and 429 when nothing
// was admitted.
func TestOverBudgetAcksOnlyTheAdmittedPrefix(t *testing.T) {
	reg := portals.NewRegistry()
	if err := reg.Replace(portals.SourceFile, []portals.Portal{
		{MemberID: installation, Domain: "crm.example.com", Active: true, OnPremise: true, SigningSecret: []byte(secret)},
	}); err != nil {
		t.Fatal(err)
	}
	b := budget.New(budget.Config{EventsPerSecond: 1e-6, EventsBurst: 1, BytesPerSecond: 1, BytesBurst: 1 << 30})
	pub := &recorder{}
	h, err := New(Config{MaxBodyBytes: 4096, Budgets: b}, reg, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return clock }
	e := echo.New()
	h.Register(e)
	code, a := signed(body(installation, event(id1, "OnAfterCrmDealUpdate", "1"), event(id2, "OnAfterCrmDealUpdate", "2"))).do(e)
	if code != http.StatusOK || strings.Join(a.Acked, ",") != id1 || !strings.Contains(a.Error, "event budget") {
		t.Fatalf("first delivery: %d %+v, want only %s acked and the budget named", code, a, id1)
	}
	if code, a := signed(body(installation, event(id2, "OnAfterCrmDealUpdate", "2"))).do(e); code != http.StatusTooManyRequests || len(a.Acked) != 0 {
		t.Fatalf("second delivery: %d %+v, want 429 and nothing acked", code, a)
	}
	if len(pub.msgs) != 1 {
		t.Fatalf("published %d, want 1", len(pub.msgs))
	}
}
