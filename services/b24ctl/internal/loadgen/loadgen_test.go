package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

func TestValidate(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:8080/bitrix24/events", Portals: []Portal{{MemberID: "m", ApplicationToken: "t"}},
		Events: []string{"ONCRMDEALUPDATE"}, Rate: 10, Duration: time.Second}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := map[string]func(c *Config){
		"remote":        func(c *Config) { c.URL = "https://ingress.example.com/bitrix24/events" },
		"no portal":     func(c *Config) { c.Portals = nil },
		"no token":      func(c *Config) { c.Portals = []Portal{{MemberID: "m"}} },
		"no event":      func(c *Config) { c.Events = nil },
		"rate too high": func(c *Config) { c.Rate = MaxRate + 1 },
		"too long":      func(c *Config) { c.Duration = MaxDuration + time.Second },
		"bad url":       func(c *Config) { c.URL = "ftp://x" },
	}
	for name, mut := range tests {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	remote := ok
	remote.URL, remote.AllowRemote = "https://ingress.example.com/bitrix24/events", true
	if err := remote.Validate(); err != nil {
		t.Errorf("--allow-remote refused: %v", err)
	}
}

func TestBodyDecodes(t *testing.T) {
	for _, ev := range []string{"ONCRMDEALUPDATE", "ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE", "ONVOXIMPLANTCALLEND"} {
		b, err := b24event.Decode(b24event.ContentTypeForm, Body(Portal{MemberID: "m1", ApplicationToken: "tok"}, ev, "42", time.Now()), b24event.DefaultLimits())
		if err != nil {
			t.Fatalf("%s: %v", ev, err)
		}
		e, err := b.Event()
		if err != nil || e.Name != ev || e.MemberID != "m1" || e.ApplicationToken != "tok" {
			t.Fatalf("%s: %+v %v", ev, e, err)
		}
		if e.EntityID == "" {
			t.Errorf("%s: no entity id", ev)
		}
	}
}

func TestRunCountsAndPercentiles(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%5 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	rep, err := Run(context.Background(), Config{URL: srv.URL + "/bitrix24/events", Portals: []Portal{{MemberID: "m", ApplicationToken: "t"}},
		Events: []string{"ONCRMDEALUPDATE"}, Rate: 200, Duration: 10 * time.Second, Requests: 50})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests != 50 || rep.OK != 40 || rep.Failed != 10 || rep.ByStatus["503"] != 10 {
		t.Fatalf("report = %+v", rep)
	}
	if p := rep.LatencyMS; !(p.P50 <= p.P90 && p.P90 <= p.P99 && p.P99 <= p.Max) || p.Max == 0 {
		t.Errorf("percentiles = %+v", p)
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Max != 100 {
		t.Errorf("got %+v", p)
	}
	if !strings.Contains(errText(context.DeadlineExceeded), "deadline") {
		t.Error("errText")
	}
}
