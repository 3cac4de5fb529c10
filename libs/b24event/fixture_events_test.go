package b24event

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fixtureWant is what each shared fixture must decode to. eventErr marks
// bodies that are not (complete) events: Event must fail with ErrMalformed.
var fixtureWant = map[string]struct {
	event, member, entity, handler string
	eventErr                       bool
}{
	"DOCS-ONAPPINSTALL.json.txt":                              {event: "ONAPPINSTALL", member: "a223c6b3710f85df22e9377d6c4f7553"},
	"DOCS-ONAPPTEST.php.txt":                                  {event: "ONAPPTEST", handler: "1", eventErr: true}, // auth elided in the docs
	"DOCS-ONAPPUNINSTALL.json.txt":                            {event: "ONAPPUNINSTALL", member: "a223c6b3710f85df22e9377d6c4f7553"},
	"DOCS-ONAPPUPDATE.json.txt":                               {event: "ONAPPUPDATE", member: "d41d8cd98f00b204e9800998ecf8427e"},
	"DOCS-ONCRMCONTACTADD.json.txt":                           {event: "ONCRMCONTACTADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "89", handler: "11"},
	"DOCS-ONCRMCONTACTDELETE.json.txt":                        {event: "ONCRMCONTACTDELETE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "89", handler: "13"},
	"DOCS-ONCRMCONTACTUPDATE.json.txt":                        {event: "ONCRMCONTACTUPDATE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "82", handler: "12"},
	"DOCS-ONCRMDEALADD-app.json.txt":                          {event: "ONCRMDEALADD", member: "d897063e1ce7c5eb9f04b9751eef5915", entity: "7405", handler: "185"},
	"DOCS-ONCRMDEALADD-outgoing-webhook.json.txt":             {event: "ONCRMDEALADD", member: "d897063e1ce7c5eb9f04b9751eef5915", entity: "7405", handler: "975"},
	"DOCS-ONCRMDEALADD.json.txt":                              {event: "ONCRMDEALADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "6641", handler: "185"},
	"DOCS-ONCRMDEALDELETE.json.txt":                           {event: "ONCRMDEALDELETE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "1765", handler: "647"},
	"DOCS-ONCRMDEALMOVETOCATEGORY.json.txt":                   {event: "ONCRMDEALMOVETOCATEGORY", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "6675", handler: "655"},
	"DOCS-ONCRMDEALUPDATE-outgoing-webhook-print_r.txt":       {event: "ONCRMDEALUPDATE", member: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", entity: "662"},
	"DOCS-ONCRMDEALUPDATE.json.txt":                           {event: "ONCRMDEALUPDATE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "759", handler: "201"},
	"DOCS-ONCRMLEADADD.json.txt":                              {event: "ONCRMLEADADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "1000983", handler: "707"},
	"DOCS-ONCRMLEADDELETE.json.txt":                           {event: "ONCRMLEADDELETE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "1000983", handler: "711"},
	"DOCS-ONCRMLEADUPDATE.json.txt":                           {event: "ONCRMLEADUPDATE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "1000983", handler: "709"},
	"DOCS-ONEXTERNALCALLSTART.json.txt":                       {event: "ONEXTERNALCALLSTART", member: "a223c6b9410f85df78e9377d6c4f7213", entity: "externalCall.89350264e026dace3f2b14d1f438257c.1773236989", handler: "1055"},
	"DOCS-ONIMBOTMESSAGEADD-groupchat.json.txt":               {event: "ONIMBOTMESSAGEADD", member: "bac1cd5c8940947a75e0d71b1a84e348", handler: "403"},
	"DOCS-ONIMBOTMESSAGEADD-private.json.txt":                 {event: "ONIMBOTMESSAGEADD", member: "bac1cd5c8940947a75e0d71b1a84e348", handler: "403"},
	"DOCS-ONOFFLINEEVENT.json.txt":                            {event: "ONOFFLINEEVENT", member: "a223c6b3710f85df22e9377d6c4f7553"},
	"DOCS-ONTASKADD.json.txt":                                 {event: "ONTASKADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "123"},
	"DOCS-ONTASKCOMMENTADD-newcard-tasks25.700.json.txt":      {event: "ONTASKCOMMENTADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "555"},
	"DOCS-ONTASKCOMMENTADD-oldcard.json.txt":                  {event: "ONTASKCOMMENTADD", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "555"},
	"DOCS-ONTASKDELETE.json.txt":                              {event: "ONTASKDELETE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "123"},
	"DOCS-ONTASKUPDATE.json.txt":                              {event: "ONTASKUPDATE", member: "a223c6b3710f85df22e9377d6c4f7553", entity: "123"},
	"DOCS-ONVOXIMPLANTCALLEND.json.txt":                       {event: "ONVOXIMPLANTCALLEND", member: "a223c6b9410f85df78e9377d6c4f7213", entity: "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327", handler: "1061"},
	"DOCS-ONVOXIMPLANTCALLINIT-builtin.json.txt":              {event: "ONVOXIMPLANTCALLINIT", member: "a223c6b9410f85df73e9377d6c4f7213", entity: "5E316880469A6376.1773306964.8740011", handler: "1057"},
	"DOCS-ONVOXIMPLANTCALLINIT-restapp.json.txt":              {event: "ONVOXIMPLANTCALLINIT", member: "a223c6b9410f85df73e9377d6c4f7213", entity: "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327", handler: "1057"},
	"DOCS-ONVOXIMPLANTCALLSTART.json.txt":                     {event: "ONVOXIMPLANTCALLSTART", member: "a223c6b9410f85df78e9377d6c4f7213", entity: "externalCall.7b0c7de811455ef32b18dc5917e4306a.1773239327", handler: "1059"},
	"DOCS-event.offline.get-response-reserved-newer.json.txt": {eventErr: true}, // a REST response, not an event
	"DOCS-event.offline.get-response.json.txt":                {eventErr: true},
	"DOCS-event.offline.list-response.json.txt":               {eventErr: true},
	"FIXTURE-ONAPPINSTALL.php-array.txt":                      {event: "ONAPPINSTALL", member: "test_member_id", handler: "1"},
}

// secretValues returns the values of the fixture's secret pairs, minus any
// that also occur as a non-secret value (the print_r fixture uses the same
// placeholder for member_id and application_token), which could not be
// told apart in the output.
func secretValues(t *testing.T, fields []Field) []string {
	public := map[string]bool{}
	for _, f := range fields {
		if !IsSecretKey(f.Key) {
			public[f.Value] = true
		}
	}
	var out []string
	for _, f := range fields {
		if !IsSecretKey(f.Key) || f.Value == "" {
			continue
		}
		if public[f.Value] {
			t.Logf("secret %s has the same value as a public field; not checked", f.Key)
			continue
		}
		out = append(out, f.Value)
	}
	return out
}

// treeStrings collects every key and string value in a tree.
func treeStrings(m map[string]any, out []string) []string {
	for k, v := range m {
		out = append(out, k)
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case map[string]any:
			out = treeStrings(v, out)
		}
	}
	return out
}

func TestFixtures(t *testing.T) {
	fixtures := loadFixtures(t)
	seen := map[string]bool{}
	for _, fx := range fixtures {
		seen[fx.name] = true
		t.Run(fx.name, func(t *testing.T) {
			want, known := fixtureWant[fx.name]
			if !known {
				t.Logf("no expectations for this fixture; running the generic checks only")
			}
			form := EncodeForm(fx.fields)
			b, err := Decode(ContentTypeForm+"; charset=utf-8", form, Limits{})
			if err != nil {
				t.Fatalf("Decode(form): %v", err)
			}
			if !reflect.DeepEqual(b.Fields, nonNil(fx.fields)) {
				t.Errorf("fields do not round-trip through EncodeForm/Decode:\n got %q\nwant %q", b.Fields, fx.fields)
			}
			checkNoSecrets(t, b, secretValues(t, fx.fields))

			ev, evErr := b.Event()
			switch {
			case known && want.eventErr:
				if !errors.Is(evErr, ErrMalformed) {
					t.Fatalf("Event() err = %v, want ErrMalformed", evErr)
				}
			case evErr != nil:
				if known {
					t.Fatalf("Event(): %v", evErr)
				}
				t.Logf("Event(): %v", evErr)
			default:
				if known {
					if ev.Name != want.event || ev.MemberID != want.member || ev.EntityID != want.entity || ev.HandlerID != want.handler {
						t.Errorf("Event() = {Name:%q MemberID:%q EntityID:%q HandlerID:%q}, want %+v",
							ev.Name, ev.MemberID, ev.EntityID, ev.HandlerID, want)
					}
				}
				if ev.TS.IsZero() {
					t.Errorf("TS not parsed from %q", ev.TSRaw)
				}
				if len(MessageID(ev)) != 32 {
					t.Errorf("MessageID = %q", MessageID(ev))
				}
				for _, s := range treeStrings(ev.Data, nil) {
					if IsSecretKey(s) {
						t.Errorf("Event.Data holds secret key %q", s)
					}
				}
			}
			if known && want.event != "" && str(b.Tree, "event") != want.event {
				t.Errorf("tree event = %q, want %q", str(b.Tree, "event"), want.event)
			}

			if fx.kind != "json" {
				return
			}
			// The same document posted as JSON decodes to the same tree and
			// the same message id.
			jb, err := Decode(ContentTypeJSON, fx.json, Limits{})
			if err != nil {
				t.Fatalf("Decode(json): %v", err)
			}
			if !reflect.DeepEqual(jb.Tree, b.Tree) {
				t.Errorf("JSON tree differs from form tree:\n json %v\n form %v", jb.Tree, b.Tree)
			}
			checkNoSecrets(t, jb, secretValues(t, fx.fields))
			if jev, jerr := jb.Event(); (jerr == nil) != (evErr == nil) || (evErr == nil && MessageID(jev) != MessageID(ev)) {
				t.Errorf("JSON event differs: %v / %v", jerr, evErr)
			}
		})
	}
	for name := range fixtureWant {
		if !seen[name] {
			t.Errorf("expectation for %s, but no such fixture", name)
		}
	}
}

// checkNoSecrets asserts that no secret value reaches Redacted(),
// RedactedTree() or the re-decoded redacted body, and that the redacted
// body decodes to RedactedTree().
func checkNoSecrets(t *testing.T, b *Body, secrets []string) {
	t.Helper()
	red := b.Redacted()
	rt := b.RedactedTree()
	all := strings.Join(treeStrings(rt, nil), "\x00")
	for _, s := range secrets {
		if bytes.Contains(red, []byte(s)) {
			t.Errorf("secret %q in Redacted(): %s", s, red)
		}
		if strings.Contains(all, s) {
			t.Errorf("secret %q in RedactedTree()", s)
		}
	}
	rb, err := Decode(b.ContentType, red, Limits{})
	if err != nil {
		t.Fatalf("Redacted() does not decode: %v\n%s", err, red)
	}
	for _, f := range rb.Fields {
		if IsSecretKey(f.Key) {
			t.Errorf("secret key %q in Redacted()", f.Key)
		}
	}
	if !reflect.DeepEqual(rb.Tree, rt) {
		t.Errorf("decoded Redacted() differs from RedactedTree():\n got %v\nwant %v", rb.Tree, rt)
	}
}

func nonNil(f []Field) []Field {
	if f == nil {
		return []Field{}
	}
	return f
}

// TestTaskCommentFixtures checks the comment ids of both task-card
// generations.
func TestTaskCommentFixtures(t *testing.T) {
	fixtures := loadFixtures(t)
	want := map[string][2]string{
		"DOCS-ONTASKCOMMENTADD-newcard-tasks25.700.json.txt": {"", "1458"},
		"DOCS-ONTASKCOMMENTADD-oldcard.json.txt":             {"123", ""},
	}
	for _, fx := range fixtures {
		w, ok := want[fx.name]
		if !ok {
			continue
		}
		delete(want, fx.name)
		b, err := Decode(ContentTypeForm, EncodeForm(fx.fields), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := b.Event()
		if err != nil {
			t.Fatal(err)
		}
		if c, m := ev.TaskComment(); c != w[0] || m != w[1] {
			t.Errorf("%s: TaskComment() = %q, %q; want %q, %q", fx.name, c, m, w[0], w[1])
		}
	}
	if len(want) > 0 {
		t.Errorf("fixtures missing: %v", want)
	}
}
