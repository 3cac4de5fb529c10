package binding

import (
	"context"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
)

func TestDiff(t *testing.T) {
	have := []bitrix.EventBinding{
		{Event: "ONCRMDEALUPDATE", Handler: "https://h.x/e"},
		{Event: "oncrmdealadd", Handler: "https://old.x/e", AuthType: 1},
		{Event: "oncrmdealadd", Handler: "https://old.x/e", AuthType: 0},
		{Event: "ONCRMDEALUPDATE", Offline: true},
		{Event: "ONTASKADD", Offline: true},
	}
	want := []desired.Binding{
		{Event: "ONCRMDEALUPDATE", Handler: "https://h.x/e"},
		{Event: "ONCRMDEALADD", Handler: "https://h.x/e"},
		{Event: "ONCRMDEALUPDATE", Offline: true},
		{Event: "ONCRMDEALUPDATE", Offline: true}, // duplicates are harmless
	}
	p := Diff(want, have)
	if p.InSync != 2 || p.Drift() != 3 {
		t.Fatalf("plan = %+v", p)
	}
	if p.Bind[0].String() != "ONCRMDEALADD -> https://h.x/e" {
		t.Errorf("bind = %v", p.Bind)
	}
	if len(p.Unbind) != 2 || p.Unbind[0].String() != "ONCRMDEALADD -> https://old.x/e" || p.Unbind[1].String() != "ONTASKADD (offline)" {
		t.Errorf("unbind = %v", p.Unbind)
	}
	if n := len(p.rows[p.Unbind[0]]); n != 2 {
		t.Errorf("both auth_type variants must be unbound, got %d rows", n)
	}
	if got := Diff(want, nil); len(got.Bind) != 3 || len(got.Unbind) != 0 {
		t.Errorf("empty portal plan = %+v", got)
	}
}

type fakeClient struct {
	calls []string
	fail  map[string]error
}

func (f *fakeClient) EventBindings(context.Context) ([]bitrix.EventBinding, error) { return nil, nil }

func (f *fakeClient) BindEvent(_ context.Context, b bitrix.EventBinding) error {
	f.calls = append(f.calls, "bind "+b.Event)
	return f.fail["bind "+b.Event]
}

func (f *fakeClient) UnbindEvent(_ context.Context, b bitrix.EventBinding) (int, error) {
	f.calls = append(f.calls, "unbind "+b.Event)
	return 1, f.fail["unbind "+b.Event]
}

func TestApply(t *testing.T) {
	f := &fakeClient{fail: map[string]error{
		"bind B": &bitrix.Error{Status: 400, Code: "ERROR_EVENT_NOT_FOUND", Description: "Event not found"},
	}}
	p := Diff([]desired.Binding{{Event: "A", Handler: "h"}, {Event: "B", Handler: "h"}, {Event: "C", Offline: true}},
		[]bitrix.EventBinding{{Event: "D", Handler: "old"}})
	res, err := Apply(context.Background(), f, p)
	if err == nil || !strings.Contains(err.Error(), "Event not found") {
		t.Fatalf("err = %v", err)
	}
	if len(res.Bound) != 2 || len(res.Unbound) != 1 || len(res.Failed) != 1 || res.Repaired() != 3 {
		t.Fatalf("res = %+v", res)
	}
	if strings.Join(f.calls, ",") != "bind A,bind B,bind C,unbind D" {
		t.Errorf("calls = %v", f.calls)
	}
}
