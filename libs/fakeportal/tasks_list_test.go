package fakeportal_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

func TestTasksTaskList(t *testing.T) {
	t0 := time.Date(2026, 9, 17, 10, 0, 0, 0, time.UTC)
	clock := &fixedClock{t0}
	p := newPortal(t, fakeportal.Config{Clock: clock})
	hook := strings.TrimPrefix(p.AddWebhook(1, "c"), "http://"+p.Domain())
	for i := range 120 {
		p.CreateTask(fakeportal.Task{Title: "t", Status: []string{"2", "3"}[i%2]}, false)
	}
	// Task 7 changes 10s later: its changedDate moves, the others' do not.
	clock.t = t0.Add(10 * time.Second)
	p.UpdateTask(7, func(tk *fakeportal.Task) { tk.Title = "changed" }, false)

	ids := func(env map[string]any) []string {
		var out []string
		for _, r := range env["result"].(map[string]any)["tasks"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out
	}
	tests := []struct {
		name   string
		params map[string]any
		check  func(t *testing.T, st int, env map[string]any)
	}{
		{"pages by 50, ID descending by default, with total and next", map[string]any{"start": 50}, func(t *testing.T, st int, env map[string]any) {
			got := ids(env)
			if st != 200 || len(got) != 50 || got[0] != "70" || env["total"] != float64(120) || env["next"] != float64(100) {
				t.Fatalf("%d rows %v total %v next %v", st, got, env["total"], env["next"])
			}
		}},
		{"last page has no next", map[string]any{"start": 100}, func(t *testing.T, st int, env map[string]any) {
			if len(ids(env)) != 20 || env["next"] != nil {
				t.Fatalf("%v next %v", ids(env), env["next"])
			}
		}},
		{"start=-1 pages by ID without a count", map[string]any{"start": -1, "order": map[string]any{"ID": "ASC"},
			"filter": map[string]any{">ID": 100}, "select": []string{"CHANGED_DATE"}}, func(t *testing.T, st int, env map[string]any) {
			rows := env["result"].(map[string]any)["tasks"].([]any)
			first := rows[0].(map[string]any)
			if len(rows) != 20 || env["total"] != float64(0) || env["next"] != nil || first["id"] != "101" {
				t.Fatalf("%d rows total %v next %v first %v", len(rows), env["total"], env["next"], first)
			}
			// select takes UPPER_CASE names, the answer is camelCase, and the
			// id comes whatever was selected.
			if len(first) != 2 || first["changedDate"] != "2026-09-17T13:00:00+03:00" {
				t.Fatalf("row %v", first)
			}
		}},
		{">CHANGED_DATE finds what changed after", map[string]any{"filter": map[string]any{">CHANGED_DATE": "2026-09-17T10:00:05Z"}}, func(t *testing.T, st int, env map[string]any) {
			rows := env["result"].(map[string]any)["tasks"].([]any)
			if len(rows) != 1 || rows[0].(map[string]any)["id"] != "7" || rows[0].(map[string]any)["changedDate"] != "2026-09-17T13:00:10+03:00" {
				t.Fatalf("%v", rows)
			}
		}},
		{">=CHANGED_DATE includes the second itself; a date without zone is portal time", map[string]any{"filter": map[string]any{">=CHANGED_DATE": "2026-09-17 13:00:10"}}, func(t *testing.T, st int, env map[string]any) {
			if got := ids(env); !slices.Equal(got, []string{"7"}) {
				t.Fatalf("%v", got)
			}
		}},
		{">CHANGED_DATE is strict", map[string]any{"filter": map[string]any{">CHANGED_DATE": "2026-09-17T10:00:10+00:00"}}, func(t *testing.T, st int, env map[string]any) {
			if got := ids(env); len(got) != 0 {
				t.Fatalf("%v", got)
			}
		}},
		{"ID equality, list and other fields", map[string]any{"filter": map[string]any{"ID": []any{3, "4", 5}, "REAL_STATUS": 2}, "order": map[string]any{"id": "asc"}}, func(t *testing.T, st int, env map[string]any) {
			if got := ids(env); !slices.Equal(got, []string{"3", "5"}) {
				t.Fatalf("%v", got)
			}
		}},
		{"single ID", map[string]any{"filter": map[string]any{"ID": "42"}}, func(t *testing.T, st int, env map[string]any) {
			if got := ids(env); !slices.Equal(got, []string{"42"}) || env["total"] != float64(1) {
				t.Fatalf("%v", got)
			}
		}},
		{"order by CHANGED_DATE", map[string]any{"order": map[string]any{"CHANGED_DATE": "desc"}, "filter": map[string]any{"<=ID": 10}}, func(t *testing.T, st int, env map[string]any) {
			if got := ids(env); got[0] != "7" || got[1] != "1" {
				t.Fatalf("%v", got)
			}
		}},
		{"unknown sort key", map[string]any{"order": map[string]any{"NOPE": "asc"}}, func(t *testing.T, st int, env map[string]any) {
			if st != 400 || env["error"] != "0" || env["error_description"] != "Invalid sorting key (internal error)" {
				t.Fatalf("%d %v", st, env)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, env := call(t, p, hook+"tasks.task.list", tt.params)
			tt.check(t, st, env)
		})
	}
	p.DeleteTask(7, false)
	if _, env := call(t, p, hook+"tasks.task.list", map[string]any{"filter": map[string]any{"ID": 7}}); len(ids(env)) != 0 {
		t.Fatal("a deleted task is still listed")
	}
}
