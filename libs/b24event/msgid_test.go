package b24event

import (
	"regexp"
	"slices"
	"testing"
)

func TestMessageIDDeterministic(t *testing.T) {
	id := MessageID(mustEvent(t, dealUpdate))
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(id) {
		t.Fatalf("MessageID = %q, want 32 lower-case hex chars", id)
	}
	// Pinned: the id is a cross-deploy contract (JetStream dedup). If this
	// changes, bump msgIDVersion on purpose and say so in the release notes.
	// (Value cross-checked with an independent Python implementation of the
	// encoding documented on appendCanonical.)
	if pinned := "fbb065d67ab9685f6cd341710f1895ed"; id != pinned {
		t.Errorf("MessageID = %q, pinned %q: the hash input format changed", id, pinned)
	}
	for range 3 {
		if again := MessageID(mustEvent(t, dealUpdate)); again != id {
			t.Fatalf("same delivery, different id: %q vs %q", again, id)
		}
	}
	if MessageID(nil) != "" {
		t.Error("MessageID(nil) not empty")
	}
}

func TestMessageIDSensitivity(t *testing.T) {
	base := MessageID(mustEvent(t, dealUpdate))
	reordered := slices.Clone(dealUpdate)
	slices.Reverse(reordered)
	tests := []struct {
		name   string
		fields []Field
		same   bool
	}{
		{"different ts", with(dealUpdate, "ts", "1736405808"), false},
		{"different entity", with(dealUpdate, "data[FIELDS][ID]", "760"), false},
		{"extra data", with(dealUpdate, "data[FIELDS][STAGE_ID]", "WON"), false},
		{"empty vs absent data value", with(dealUpdate, "data[FIELDS][X]", ""), false},
		{"different handler", with(dealUpdate, "event_handler_id", "202"), false},
		{"no handler", without(dealUpdate, "event_handler_id"), false},
		{"different event", with(dealUpdate, "event", "ONCRMDEALADD"), false},
		{"different portal", with(dealUpdate, "auth[member_id]", "b223c6b3710f85df22e9377d6c4f7553"), false},
		{"lower-case event name", with(dealUpdate, "event", "oncrmdealupdate"), true},
		{"pair order", reordered, true},
		{"other tokens", with(with(with(dealUpdate, "auth[access_token]", "x"), "auth[refresh_token]", "y"), "auth[application_token]", "z"), true},
		{"tokens redacted", without(without(without(dealUpdate, "auth[access_token]"), "auth[refresh_token]"), "auth[application_token]"), true},
		{"secret in data", with(dealUpdate, "data[BOT][1][access_token]", "x"), true},
		{"other auth fields", with(dealUpdate, "auth[domain]", "renamed.bitrix24.com"), true},
		{"repeated pair", append(slices.Clone(dealUpdate), Field{"data[FIELDS][ID]", "759"}), true},
	}
	for _, tt := range tests {
		id := MessageID(mustEvent(t, tt.fields))
		if (id == base) != tt.same {
			t.Errorf("%s: same id = %v, want %v", tt.name, id == base, tt.same)
		}
	}
}

// TestMessageIDSurvivesRedaction: the ingress computes the id on the raw
// POST; anything re-deriving it from the published (redacted) body must get
// the same id.
func TestMessageIDSurvivesRedaction(t *testing.T) {
	bodies := [][]Field{
		dealUpdate,
		append(slices.Clone(dealUpdate), Field{"data[BOT][567][AUTH][access_token]", "s"}, Field{"data[BOT][567][BOT_ID]", "567"}, Field{"data[X][refresh_token]", "r"}),
		// An overwritten secret pair still shifts later "[]" indexes in the
		// raw tree; the id must follow the redacted pairs.
		append(slices.Clone(dealUpdate), Field{"data[7][token]", "s"}, Field{"data[]", "a"}, Field{"data[7]", "b"}),
	}
	for _, fields := range bodies {
		for _, ct := range []string{ContentTypeForm, ContentTypeJSON} {
			raw := EncodeForm(fields)
			b, err := Decode(ContentTypeForm, raw, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			b.ContentType = ct // re-encode the same pairs as JSON too
			ev, err := b.Event()
			if err != nil {
				t.Fatal(err)
			}
			rb, err := Decode(ct, b.Redacted(), Limits{})
			if err != nil {
				t.Fatalf("%s: %v\n%s", ct, err, b.Redacted())
			}
			rev, err := rb.Event()
			if err != nil {
				t.Fatal(err)
			}
			if MessageID(rev) != MessageID(ev) {
				t.Errorf("%s: id changed by redaction", ct)
			}
		}
	}
}

// TestMessageIDHandMade: events built by hand (e.g. from offline events)
// hash deterministically, whatever Data holds.
func TestMessageIDHandMade(t *testing.T) {
	a := &Event{Name: "ONX", MemberID: "m", Data: map[string]any{"n": 1, "l": []any{"x"}, "s": "v", "secret": map[string]any{"token": "t"}}}
	b := &Event{Name: "ONX", MemberID: "m", Data: map[string]any{"s": "v", "l": []any{"x"}, "n": 1}}
	if MessageID(a) != MessageID(b) {
		t.Error("secrets-only maps or key order changed the id")
	}
	c := &Event{Name: "ONX", MemberID: "m", Data: map[string]any{"s": "v", "l": []any{"x"}, "n": 2}}
	if MessageID(a) == MessageID(c) {
		t.Error("different data, same id")
	}
	// Field boundaries are unambiguous.
	d := &Event{Name: "ONXm", MemberID: ""}
	e := &Event{Name: "ONX", MemberID: "m"}
	if MessageID(d) == MessageID(e) {
		t.Error("length prefixes missing")
	}
}
