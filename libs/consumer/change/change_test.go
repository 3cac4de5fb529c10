package change_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/consumer/change"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
)

func f(kv ...string) change.Fields {
	out := change.Fields{}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = json.RawMessage(kv[i+1])
	}
	return out
}

func TestHashIgnoresOrderAndSpace(t *testing.T) {
	a := f("TITLE", `"A"`, "UF_CRM_X", `{"b":1, "a":[1,2]}`)
	b := f("UF_CRM_X", `{"a":[1,2],"b":1}`, "TITLE", `"A"`)
	if change.Hash(a) != change.Hash(b) {
		t.Error("equal states hash differently")
	}
	if change.Hash(a) == change.Hash(f("TITLE", `"B"`, "UF_CRM_X", `{"b":1,"a":[1,2]}`)) {
		t.Error("different states hash equal")
	}
	c := f("TITLE", `"A"`, "UF_CRM_X", `{"b":1,"a":[1,2]}`, "DATE_MODIFY", `"x"`)
	if change.Hash(a) != change.Hash(c, "DATE_MODIFY") {
		t.Error("ignored field changed the hash")
	}
}

func TestDiff(t *testing.T) {
	old := f("TITLE", `"A"`, "STAGE_ID", `"NEW"`, "GONE", `"1"`)
	new := f("TITLE", `"A"`, "STAGE_ID", `"WON"`, "UF_CRM_1", `["x"]`)
	got := change.Diff(old, new)
	want := []string{"GONE:\"1\"->", "STAGE_ID:\"NEW\"->\"WON\"", "UF_CRM_1:->[\"x\"]"}
	if len(got) != len(want) {
		t.Fatalf("diff %v", got)
	}
	for i, c := range got {
		if s := c.Field + ":" + c.OldJson + "->" + c.NewJson; s != want[i] {
			t.Errorf("change %d = %s, want %s", i, s, want[i])
		}
	}
}

func TestSameValue(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want bool
	}{
		{`"100"`, `100`, true}, {`"100.00"`, `"100"`, true}, {`"Y"`, `"Y"`, true}, {`"Y"`, `"N"`, false},
		{`["1","2"]`, `[1,2]`, true}, {`["1"]`, `"1"`, true}, {`null`, `""`, true}, {`"a"`, `["a","b"]`, false},
	} {
		if got := change.SameValue(json.RawMessage(tt.a), json.RawMessage(tt.b)); got != tt.want {
			t.Errorf("SameValue(%s, %s) = %v", tt.a, tt.b, got)
		}
	}
}

func TestBuild(t *testing.T) {
	now := time.Unix(1700000000, 0)
	created := change.Build("m", "deal", "1", nil, f("TITLE", `"A"`), false, "e1", now)
	if created.Kind != eventsv1.ChangeKind_CHANGE_KIND_CREATED || len(created.Changes) != 1 || created.SnapshotHash == "" {
		t.Errorf("created %+v", created)
	}
	again := change.Build("m", "deal", "1", nil, f("TITLE", `"A"`), false, "e2", now.Add(time.Hour))
	if again.Id != created.Id {
		t.Error("the same change got another id")
	}
	deleted := change.Build("m", "deal", "1", f("TITLE", `"A"`), nil, true, "e3", now)
	if deleted.Kind != eventsv1.ChangeKind_CHANGE_KIND_DELETED || deleted.Id == created.Id {
		t.Errorf("deleted %+v", deleted)
	}
	if change.Subject(deleted) != "b24.changes.deal.m.1" {
		t.Error(change.Subject(deleted))
	}
}

func TestSubjectToken(t *testing.T) {
	if got := change.SubjectToken("externalCall.ab12.1700"); got != "externalCall_ab12_1700" {
		t.Error(got)
	}
	if change.SubjectToken("42") != "42" || change.SubjectToken("") != "_" {
		t.Error("plain tokens must pass through")
	}
}
