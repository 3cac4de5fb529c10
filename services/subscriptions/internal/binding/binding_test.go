package binding

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/services/subscriptions/internal/desired"
)

func TestDiff(t *testing.T) {
	var have []Row
	if err := json.Unmarshal([]byte(`[
		{"event":"ONCRMDEALUPDATE","handler":"https://h.x/e","auth_type":"0","offline":0},
		{"event":"oncrmdealadd","handler":"https://old.x/e","auth_type":"0","offline":"0"},
		{"event":"ONCRMDEALUPDATE","connector_id":"","offline":1},
		{"event":"ONTASKADD","connector_id":"","offline":1}
	]`), &have); err != nil {
		t.Fatal(err)
	}
	want := []desired.Binding{
		{Event: "ONCRMDEALUPDATE", Handler: "https://h.x/e"},
		{Event: "ONCRMDEALADD", Handler: "https://h.x/e"},
		{Event: "ONCRMDEALUPDATE", Offline: true},
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
	if got := Diff(want, nil); len(got.Bind) != 3 || len(got.Unbind) != 0 {
		t.Errorf("empty portal plan = %+v", got)
	}
}

type fakeCaller struct {
	calls []string
	fail  map[string]error
}

func (f *fakeCaller) Call(_ context.Context, method string, params, _ any, _ ...bitrix.CallOption) error {
	p := params.(map[string]any)
	key := method + " " + p["event"].(string)
	f.calls = append(f.calls, key)
	return f.fail[key]
}

func TestApply(t *testing.T) {
	already := &bitrix.Error{Status: 400, Code: "ERROR_CORE", Description: "Unable to set event handler: Handler already binded"}
	f := &fakeCaller{fail: map[string]error{
		"event.bind A":   already,
		"event.bind B":   &bitrix.Error{Status: 400, Code: "ERROR_EVENT_NOT_FOUND", Description: "Event not found"},
		"event.unbind D": nil,
	}}
	p := Plan{
		Bind:   []desired.Binding{{Event: "A", Handler: "h"}, {Event: "B", Handler: "h"}, {Event: "C", Offline: true}},
		Unbind: []desired.Binding{{Event: "D", Handler: "old"}},
	}
	res, err := Apply(context.Background(), f, p)
	if err == nil || !strings.Contains(err.Error(), "Event not found") {
		t.Fatalf("err = %v", err)
	}
	if len(res.Bound) != 2 || len(res.Unbound) != 1 || len(res.Failed) != 1 {
		t.Fatalf("res = %+v", res)
	}
	if !AlreadyBound(already) || AlreadyBound(errors.New("Handler already binded")) {
		t.Error("AlreadyBound must match only bitrix errors")
	}
}
