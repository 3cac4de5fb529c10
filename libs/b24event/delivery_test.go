package b24event

import (
	"fmt"
	"reflect"
	"testing"
)

// sameAsGeneral checks DecodeDelivery against Decode + Body.Event +
// MessageID + Body.Redacted for one body, and reports whether the fast
// path was taken.
func sameAsGeneral(t *testing.T, ct string, body []byte, lim Limits) bool {
	t.Helper()
	d, derr := DecodeDelivery(ct, body, lim)
	b, err := Decode(ct, body, lim)
	var ev *Event
	if err == nil {
		ev, err = b.Event()
	}
	if (derr == nil) != (err == nil) || (err != nil && derr.Error() != err.Error()) {
		t.Fatalf("DecodeDelivery error %v, general path %v\nbody %q", derr, err, body)
	}
	if err != nil {
		return b != nil && plainKeys(b.Fields)
	}
	if !reflect.DeepEqual(d.Event, ev) {
		t.Fatalf("DecodeDelivery event\n %+v\ngeneral path\n %+v\nbody %q", d.Event, ev, body)
	}
	if id := MessageID(ev); d.MessageID != id {
		t.Fatalf("DecodeDelivery id %s, general path %s", d.MessageID, id)
	}
	if got, want := d.AppendRedacted([]byte("x")), append([]byte("x"), b.Redacted()...); string(got) != string(want) {
		t.Fatalf("DecodeDelivery redacted %q, general path %q", got, want)
	}
	return plainKeys(b.Fields)
}

// TestDecodeDeliveryFixtures: every documented event takes the fast path
// and gets exactly what the general path gives.
func TestDecodeDeliveryFixtures(t *testing.T) {
	for _, fx := range loadFixtures(t) {
		t.Run(fx.name, func(t *testing.T) {
			if !sameAsGeneral(t, ContentTypeForm, EncodeForm(fx.fields), Limits{}) {
				t.Errorf("form body took the general path")
			}
			if fx.kind == "json" && !sameAsGeneral(t, ContentTypeJSON, fx.json, Limits{}) {
				t.Errorf("JSON body took the general path")
			}
		})
	}
}

func TestDecodeDeliveryShapes(t *testing.T) {
	for _, tc := range []struct {
		body  string
		plain bool
	}{
		{"event=ONCRMDEALUPDATE&auth[member_id]=m&data[FIELDS][ID]=1&ts=1", true},
		{"event=ONX&auth[member_id]=m&data=undefined", true},
		{"event=ONX&auth[member_id]=m&data=", true},
		{"event=ONX&auth[member_id]=m&data=oops", true},
		{"event=ONX&auth[member_id]=m&data[BOT][1][AUTH][access_token]=s&data[BOT][1][BOT_ID]=1", true},
		{"event=ONX&auth[member_id]=m&data[x][token]=s", true}, // all of data is secret
		{"event=ONX&auth=flat&auth2[member_id]=m", true},
		{"event=ONX&auth[member_id]=m&auth[member_id]=n", false}, // repeated key
		{"event=ONX&auth[member_id]=m&auth=x", false},            // value and array
		{"event=ONX&auth[member_id]=m&data[a]=1&data[a][b]=2", false},
		{"event=ONX&auth[member_id]=m&data[]=1&data[]=2", false}, // appends
		{"event[x]=ONX&auth[member_id]=m", true},
		{"auth[member_id]=m", true},
		{"event=ONX", true},
		{"event=ONX&auth[member_id]=bad.id", true},
	} {
		if got := sameAsGeneral(t, ContentTypeForm, []byte(tc.body), Limits{}); got != tc.plain {
			t.Errorf("%q: fast path %v, want %v", tc.body, got, tc.plain)
		}
	}
}

// FuzzDecodeDelivery holds the fast path to the general one: same event,
// id, redacted body and error for any input.
//
// Run log (go1.26.8, shared 2-core machine, `go test -run='^$'
// -fuzz=FuzzDecodeDelivery -fuzztime=3m -parallel=1`):
//
//   - 2026-11-27, 3m0s, 990,138 execs: no failure.
func FuzzDecodeDelivery(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(false, EncodeForm(fx.fields))
		if fx.kind == "json" {
			f.Add(true, fx.json)
		}
	}
	for _, s := range []string{
		"event=ONX&auth[member_id]=m&data[a]=1&data[a][b]=2",
		"event=ONX&auth[member_id]=m&data[x][token]=s&data[y]=1",
		"event=onx&auth[member_id]=m&data=undefined&ts=99999999999999",
		"event=ONCRMDEALADD&auth[member_id]=m&auth[domain]=d&data[FIELDS][ID]=5&data[FIELDS][ID2]=6",
	} {
		f.Add(false, []byte(s))
	}
	f.Add(true, []byte(`{"event":"ONX","auth":{"member_id":"m","application_token":"t"},"data":{"FIELDS":{"ID":"1"}}}`))
	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		ct := ContentTypeForm
		if isJSON {
			ct = ContentTypeJSON
		}
		sameAsGeneral(t, ct, body, fuzzLimits)
	})
}

// TestPlainKeysLarge exercises the sorted check of bodies over 32 pairs.
func TestPlainKeysLarge(t *testing.T) {
	base := make([]Field, 0, 40)
	for i := range 40 {
		base = append(base, Field{Key: fmt.Sprintf("data[P][%d]", i), Value: "v"})
	}
	for _, tc := range []struct {
		extra []Field
		want  bool
	}{
		{nil, true},
		{[]Field{{"data[P][7]", "again"}}, false},
		{[]Field{{"data[P][7][x]", "deeper"}}, false},
		{[]Field{{"data[P]", "flat"}}, false},
		{[]Field{{"data[P0]", "x"}, {"data[P1][a]", "y"}}, true},
		{[]Field{{"data[P][70]", "x"}, {"data[P][7", "bad but not a prefix"}}, true},
	} {
		fields := append(append([]Field(nil), base...), tc.extra...)
		if got := plainKeys(fields); got != tc.want {
			t.Errorf("extra %v: plainKeys = %v, want %v", tc.extra, got, tc.want)
		}
	}
}
