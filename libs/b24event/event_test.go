package b24event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// dealUpdate is a deal event as Bitrix24 sends it (fields in capture order).
var dealUpdate = []Field{
	{"event", "ONCRMDEALUPDATE"},
	{"event_handler_id", "201"},
	{"data[FIELDS][ID]", "759"},
	{"ts", "1736405807"},
	{"auth[access_token]", "s6p6eclrvim6da22ft9ch94ekreb52lv"},
	{"auth[expires]", "1736409407"},
	{"auth[expires_in]", "3600"},
	{"auth[scope]", "crm"},
	{"auth[domain]", "some-domain.bitrix24.com"},
	{"auth[server_endpoint]", "https://oauth.bitrix.info/rest/"},
	{"auth[status]", "F"},
	{"auth[client_endpoint]", "https://some-domain.bitrix24.com/rest/"},
	{"auth[member_id]", "a223c6b3710f85df22e9377d6c4f7553"},
	{"auth[user_id]", "1"},
	{"auth[refresh_token]", "4s386p3q0tr8dy89xvmt96234v3dljg8"},
	{"auth[application_token]", "51856fefc120afa4b628cc82d3935cce"},
}

// with returns fields with the value of key replaced (or appended).
func with(fields []Field, key, val string) []Field {
	out := append([]Field(nil), fields...)
	for i := range out {
		if out[i].Key == key {
			out[i].Value = val
			return out
		}
	}
	return append(out, Field{key, val})
}

// without returns fields without key.
func without(fields []Field, key string) []Field {
	var out []Field
	for _, f := range fields {
		if f.Key != key {
			out = append(out, f)
		}
	}
	return out
}

func mustEvent(t *testing.T, fields []Field) *Event {
	t.Helper()
	b, err := Decode(ContentTypeForm, EncodeForm(fields), Limits{})
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	ev, err := b.Event()
	if err != nil {
		t.Fatalf("Event: %v", err)
	}
	return ev
}

func TestEventFields(t *testing.T) {
	ev := mustEvent(t, dealUpdate)
	want := &Event{
		Name:             "ONCRMDEALUPDATE",
		MemberID:         "a223c6b3710f85df22e9377d6c4f7553",
		Domain:           "some-domain.bitrix24.com",
		HandlerID:        "201",
		TSRaw:            "1736405807",
		TS:               time.Date(2025, 1, 9, 6, 56, 47, 0, time.UTC),
		ApplicationToken: "51856fefc120afa4b628cc82d3935cce",
		ClientEndpoint:   "https://some-domain.bitrix24.com/rest/",
		ServerEndpoint:   "https://oauth.bitrix.info/rest/",
		AccessToken:      "s6p6eclrvim6da22ft9ch94ekreb52lv",
		RefreshToken:     "4s386p3q0tr8dy89xvmt96234v3dljg8",
		EntityID:         "759",
		Data:             m{"FIELDS": m{"ID": "759"}},
	}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("Event() =\n%+v\nwant\n%+v", ev, want)
	}
}

func TestEventErrors(t *testing.T) {
	long := strings.Repeat("A", 65)
	tests := []struct {
		name   string
		fields []Field
		msg    string
	}{
		{"missing event", without(dealUpdate, "event"), "missing event"},
		{"empty event", with(dealUpdate, "event", ""), "missing event"},
		{"event is an array", append(without(dealUpdate, "event"), Field{"event[x]", "ONX"}), "missing event"},
		{"event with a dot", with(dealUpdate, "event", "ONCRM.DEAL"), "not [A-Z0-9_]"},
		{"event with a wildcard", with(dealUpdate, "event", "ONCRM*"), "not [A-Z0-9_]"},
		{"event with a space", with(dealUpdate, "event", "ON CRM"), "not [A-Z0-9_]"},
		{"event with non-ASCII", with(dealUpdate, "event", "ONCRMDEALUPDATÉ"), "not [A-Z0-9_]"},
		{"event too long", with(dealUpdate, "event", long), "not [A-Z0-9_]"},
		{"missing member_id", without(dealUpdate, "auth[member_id]"), "missing auth[member_id]"},
		{"missing auth", []Field{{"event", "ONX"}}, "missing auth[member_id]"},
		{"auth is a string", []Field{{"event", "ONX"}, {"auth", "x"}}, "missing auth[member_id]"},
		{"member_id with a dot", with(dealUpdate, "auth[member_id]", "a.b"), "not [A-Za-z0-9_-]"},
		{"member_id with >", with(dealUpdate, "auth[member_id]", "a>"), "not [A-Za-z0-9_-]"},
		{"member_id too long", with(dealUpdate, "auth[member_id]", long), "not [A-Za-z0-9_-]"},
		{"data is a string", with(dealUpdate, "data", "x"), "data is a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Decode(ContentTypeForm, EncodeForm(tt.fields), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			_, err = b.Event()
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Event() err = %v, want ErrMalformed mentioning %q", err, tt.msg)
			}
		})
	}
	if _, err := (&Body{}).Event(); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty Body: err = %v", err)
	}
}

func TestEventNormalization(t *testing.T) {
	tests := []struct {
		name   string
		fields []Field
		check  func(*Event) bool
	}{
		{"lower-case event is upper-cased", with(dealUpdate, "event", "onCrmDealUpdate"), func(e *Event) bool { return e.Name == "ONCRMDEALUPDATE" }},
		{"member_id at 64 chars", with(dealUpdate, "auth[member_id]", strings.Repeat("a-_Z9", 12)+"abcd"), func(e *Event) bool { return len(e.MemberID) == 64 }},
		{"missing ts", without(dealUpdate, "ts"), func(e *Event) bool { return e.TSRaw == "" && e.TS.IsZero() }},
		{"invalid ts", with(dealUpdate, "ts", "yesterday"), func(e *Event) bool { return e.TSRaw == "yesterday" && e.TS.IsZero() }},
		{"negative ts", with(dealUpdate, "ts", "-5"), func(e *Event) bool { return e.TS.IsZero() }},
		{"ts past year 9999", with(dealUpdate, "ts", "253402300800"), func(e *Event) bool { return e.TS.IsZero() }},
		{"missing handler id", without(dealUpdate, "event_handler_id"), func(e *Event) bool { return e.HandlerID == "" }},
		{"handler id as an array is ignored", append(without(dealUpdate, "event_handler_id"), Field{"event_handler_id[0]", "1"}), func(e *Event) bool { return e.HandlerID == "" }},
		{"missing data", without(dealUpdate, "data[FIELDS][ID]"), func(e *Event) bool { return e.Data != nil && len(e.Data) == 0 && e.EntityID == "" }},
		{"undefined data", append(without(dealUpdate, "data[FIELDS][ID]"), Field{"data", "undefined"}), func(e *Event) bool { return e.Data != nil && len(e.Data) == 0 }},
		{"empty data", append(without(dealUpdate, "data[FIELDS][ID]"), Field{"data", ""}), func(e *Event) bool { return e.Data != nil && len(e.Data) == 0 }},
		{"outgoing webhook has no tokens", without(without(dealUpdate, "auth[access_token]"), "auth[refresh_token]"), func(e *Event) bool { return e.AccessToken == "" && e.RefreshToken == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev := mustEvent(t, tt.fields); !tt.check(ev) {
				t.Errorf("unexpected event: %+v", ev)
			}
		})
	}
}

func TestEntityID(t *testing.T) {
	tests := []struct {
		event string
		data  []Field
		want  string
	}{
		{"ONCRMDEALADD", []Field{{"data[FIELDS][ID]", "7"}}, "7"},
		{"ONCRMLEADDELETE", []Field{{"data[FIELDS][ID]", "8"}}, "8"},
		{"ONCRMDEALMOVETOCATEGORY", []Field{{"data[FIELDS][ID]", "9"}, {"data[FIELDS][CATEGORY_ID]", "1"}}, "9"},
		{"ONCRMDEALUSERFIELDADD", []Field{{"data[FIELDS][ID]", "10"}}, "10"},
		{"ONCRMDEALUPDATE", []Field{{"data[FIELDS]", "undefined"}}, ""},
		{"ONCRMDEALUPDATE", []Field{{"data[FIELDS][ID][x]", "1"}}, ""},
		{"ONTASKADD", []Field{{"data[FIELDS_BEFORE]", "undefined"}, {"data[FIELDS_AFTER][ID]", "123"}}, "123"},
		{"ONTASKUPDATE", []Field{{"data[FIELDS_BEFORE][ID]", "1"}, {"data[FIELDS_AFTER][ID]", "2"}}, "2"},
		{"ONTASKDELETE", []Field{{"data[FIELDS_BEFORE][ID]", "3"}, {"data[FIELDS_AFTER]", "undefined"}}, "3"},
		{"ONTASKCOMMENTADD", []Field{{"data[FIELDS_AFTER][ID]", "0"}, {"data[FIELDS_AFTER][TASK_ID]", "555"}, {"data[FIELDS_AFTER][MESSAGE_ID]", "1458"}}, "555"},
		{"ONTASKCOMMENTDELETE", []Field{{"data[FIELDS_AFTER]", "undefined"}, {"data[FIELDS_BEFORE][ID]", "4"}, {"data[FIELDS_BEFORE][TASK_ID]", "556"}}, "556"},
		{"ONVOXIMPLANTCALLEND", []Field{{"data[CALL_ID]", "externalCall.x.1"}}, "externalCall.x.1"},
		{"ONEXTERNALCALLSTART", []Field{{"data[CALL_ID]", "c1"}, {"data[CRM_ENTITY_ID]", "797"}}, "c1"},
		{"ONAPPINSTALL", []Field{{"data[VERSION]", "1"}}, ""},
		{"ONIMBOTMESSAGEADD", []Field{{"data[PARAMS][MESSAGE_ID]", "1"}}, ""},
		{"ONTASKCOMMENTADD", nil, ""},
	}
	for _, tt := range tests {
		fields := append([]Field{{"event", tt.event}, {"auth[member_id]", "m"}}, tt.data...)
		if got := mustEvent(t, fields).EntityID; got != tt.want {
			t.Errorf("%s %v: EntityID = %q, want %q", tt.event, tt.data, got, tt.want)
		}
	}
}

func TestTaskComment(t *testing.T) {
	tests := []struct {
		event            string
		data             []Field
		comment, message string
	}{
		{"ONTASKCOMMENTADD", []Field{{"data[FIELDS_AFTER][ID]", "123"}, {"data[FIELDS_AFTER][TASK_ID]", "555"}}, "123", ""},
		{"ONTASKCOMMENTADD", []Field{{"data[FIELDS_AFTER][ID]", "0"}, {"data[FIELDS_AFTER][TASK_ID]", "555"}, {"data[FIELDS_AFTER][MESSAGE_ID]", "1458"}}, "", "1458"},
		{"ONTASKCOMMENTDELETE", []Field{{"data[FIELDS_BEFORE][ID]", "9"}, {"data[FIELDS_BEFORE][TASK_ID]", "5"}}, "9", ""},
		{"ONTASKUPDATE", []Field{{"data[FIELDS_AFTER][ID]", "123"}}, "", ""},
	}
	for _, tt := range tests {
		ev := mustEvent(t, append([]Field{{"event", tt.event}, {"auth[member_id]", "m"}}, tt.data...))
		if c, msg := ev.TaskComment(); c != tt.comment || msg != tt.message {
			t.Errorf("%s %v: TaskComment() = %q, %q; want %q, %q", tt.event, tt.data, c, msg, tt.comment, tt.message)
		}
	}
}

// TestEventDataHasNoSecrets: bot events carry credentials inside data; the
// typed view must not expose them, and Body.Tree must not be modified.
func TestEventDataHasNoSecrets(t *testing.T) {
	fields := []Field{
		{"event", "ONIMBOTMESSAGEADD"},
		{"data[BOT][567][access_token]", "BOTSECRET1"},
		{"data[BOT][567][AUTH][refresh_token]", "BOTSECRET2"},
		{"data[BOT][567][AUTH][client_secret]", "BOTSECRET3"},
		{"data[BOT][567][AUTH][member_id]", "m"},
		{"data[BOT][567][BOT_ID]", "567"},
		{"data[ONLY][application_token]", "BOTSECRET4"},
		{"data[PARAMS][MESSAGE]", "hi"},
		{"auth[member_id]", "m"},
	}
	b, err := Decode(ContentTypeForm, EncodeForm(fields), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := b.Event()
	if err != nil {
		t.Fatal(err)
	}
	want := m{"BOT": m{"567": m{"AUTH": m{"member_id": "m"}, "BOT_ID": "567"}}, "PARAMS": m{"MESSAGE": "hi"}}
	if !reflect.DeepEqual(ev.Data, map[string]any(want)) {
		t.Errorf("Data = %v, want %v", ev.Data, want)
	}
	if got := b.Tree["data"].(map[string]any)["BOT"].(map[string]any)["567"].(map[string]any)["access_token"]; got != "BOTSECRET1" {
		t.Errorf("Body.Tree was modified: %v", got)
	}
	// A hand-made Body without Fields is pruned instead.
	hb := &Body{Tree: b.Tree}
	hev, err := hb.Event()
	if err != nil {
		t.Fatal(err)
	}
	want["ONLY"] = m{}
	if !reflect.DeepEqual(hev.Data, map[string]any(want)) {
		t.Errorf("hand-made Data = %v, want %v", hev.Data, want)
	}
	if MessageID(hev) != MessageID(ev) {
		t.Errorf("pruned and rebuilt data give different ids")
	}
}
