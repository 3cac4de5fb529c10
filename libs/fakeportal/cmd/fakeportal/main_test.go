package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/b24hub/b24hub/libs/b24event"
)

func TestHelpDocumentsFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"-h"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-target", "-member-id", "-application-token", "-scenario", "-rate", "-burst", "bulk-edit"} {
		if !strings.Contains(errOut.String(), flag) {
			t.Errorf("-h does not mention %s", flag)
		}
	}
}

func TestScenarioDrivesAnIngress(t *testing.T) {
	var (
		mu     sync.Mutex
		events []*b24event.Event
	)
	ingress := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body, err := b24event.Decode(r.Header.Get("Content-Type"), b, b24event.Limits{})
		if err != nil {
			t.Errorf("decode: %v", err)
			return
		}
		ev, err := body.Event()
		if err != nil {
			t.Errorf("event: %v", err)
			return
		}
		mu.Lock()
		events = append(events, ev)
		mu.Unlock()
	}))
	defer ingress.Close()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-target", ingress.URL + "/b24/events",
		"-member-id", "a223c6b3710f85df22e9377d6c4f7553", "-application-token", "51856fefc120afa4b628cc82d3935cce",
		"-scenario", "bulk-edit:25", "-exit"}, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 25 {
		t.Fatalf("ingress got %d events\n%s", len(events), out.String())
	}
	for _, ev := range events {
		if ev.Name != "ONCRMDEALUPDATE" || ev.MemberID != "a223c6b3710f85df22e9377d6c4f7553" ||
			ev.ApplicationToken != "51856fefc120afa4b628cc82d3935cce" || ev.AccessToken != "" {
			t.Fatalf("event %+v", ev)
		}
	}
	if !strings.Contains(out.String(), "25 sent") {
		t.Fatalf("report: %s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-scenario", "bulk-edit:3"}, {"-scenario", "nope", "-target", "http://x.example"}, {"-webhook", "abc"}, {"extra"}} {
		if err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, args...), io.Discard, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
