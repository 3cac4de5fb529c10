package bitrix

import (
	"context"
	"encoding/json"
	"testing"
)

// TestListTasksToleratesIDTypes: tasks.task.list rows carry a lower-case
// id, as a string or a number (§4.3, §4.8), and Walk pages on it.
func TestListTasksToleratesIDTypes(t *testing.T) {
	c, s, _, _ := newScripted(t, answer{body: `{"result":{"tasks":[` +
		`{"id":5,"title":"a","changedDate":"2026-09-17T12:00:00+02:00","ufCrmTask":false},` +
		`{"id":"6","title":"b","changedDate":"2026-09-17T12:30:00+02:00","ufCrmTask":["D_1"]}]},"total":0}`})
	var got []Task
	for tk, err := range c.ListTasks(context.Background(), TaskQuery{Filter: map[string]any{">CHANGED_DATE": "2026-09-17T09:00:00Z"}}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tk)
	}
	if len(got) != 2 || got[0].ID != 5 || got[1].ID != 6 || got[1].UfCrmTask[0] != "D_1" || got[0].ChangedDate == "" {
		t.Fatalf("%+v", got)
	}
	if s.count() != 1 {
		t.Fatalf("%d requests for a short page", s.count())
	}
	var body struct {
		Filter map[string]any    `json:"filter"`
		Order  map[string]string `json:"order"`
		Select []string          `json:"select"`
		Start  int               `json:"start"`
	}
	if err := json.Unmarshal([]byte(s.reqs[0].body), &body); err != nil {
		t.Fatal(err)
	}
	if body.Start != -1 || body.Order["ID"] != "ASC" || body.Filter[">CHANGED_DATE"] != "2026-09-17T09:00:00Z" || len(body.Select) == 0 {
		t.Fatalf("request %s", s.reqs[0].body)
	}
}
