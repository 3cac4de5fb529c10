package fakeportal

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Scenario is a scripted change that fires events the way a user's action
// on the portal would.
type Scenario struct {
	// Name is one of: deal-add, deal-update, deal-delete, bulk-edit,
	// contact-add, task-add, task-update, task-delete, call-end, app-test.
	Name string
	// Count is how many entities to touch. Default 1.
	Count int
	// Fields are deal fields to set (deal-add, deal-update, bulk-edit).
	Fields map[string]string
}

// ParseScenario reads "name" or "name:count", e.g. "bulk-edit:1000".
func ParseScenario(s string) (Scenario, error) {
	name, count, hasCount := strings.Cut(strings.TrimSpace(s), ":")
	sc := Scenario{Name: name, Count: 1}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 1 {
			return Scenario{}, fmt.Errorf("fakeportal: scenario %q: count must be a positive integer", s)
		}
		sc.Count = n
	}
	if _, ok := scenarios[sc.Name]; !ok {
		return Scenario{}, fmt.Errorf("fakeportal: unknown scenario %q (known: %s)", sc.Name, ScenarioNames())
	}
	return sc, nil
}

// ScenarioNames lists the known scenario names.
func ScenarioNames() string {
	return "deal-add, deal-update, deal-delete, bulk-edit, contact-add, task-add, task-update, task-delete, call-end, app-test"
}

var scenarios = map[string]func(p *Portal, s Scenario) []int64{
	"deal-add": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for i := range s.Count {
			f := map[string]string{"TITLE": "Deal " + strconv.Itoa(i+1)}
			for k, v := range s.Fields {
				f[k] = v
			}
			ids = append(ids, p.CreateDeal(f, true))
		}
		return ids
	},
	"contact-add": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for i := range s.Count {
			n := strconv.Itoa(i + 1)
			ids = append(ids, p.CreateContact(map[string]string{"NAME": "Contact", "LAST_NAME": n, "EMAIL": "contact" + n + "@example.com"}, true))
		}
		return ids
	},
	"deal-update": func(p *Portal, s Scenario) []int64 {
		return p.BulkEditDeals(s.Count, withDefault(s.Fields, "STAGE_ID", "PREPARATION"))
	},
	"bulk-edit": func(p *Portal, s Scenario) []int64 {
		return p.BulkEditDeals(s.Count, withDefault(s.Fields, "STAGE_ID", "PREPARATION"))
	},
	"deal-delete": func(p *Portal, s Scenario) []int64 {
		p.mu.Lock()
		ids := p.sortedDealIDs()
		p.mu.Unlock()
		for len(ids) < s.Count {
			ids = append(ids, p.CreateDeal(map[string]string{"TITLE": "To delete"}, false))
		}
		ids = ids[:s.Count]
		for _, id := range ids {
			p.DeleteDeal(id, true)
		}
		return ids
	},
	"task-add": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for i := range s.Count {
			ids = append(ids, p.CreateTask(Task{Title: "Task " + strconv.Itoa(i+1)}, true))
		}
		return ids
	},
	"task-update": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for i := range s.Count {
			id := p.CreateTask(Task{Title: "Task " + strconv.Itoa(i+1)}, false)
			p.UpdateTask(id, func(t *Task) { t.Status = "3" }, true)
			ids = append(ids, id)
		}
		return ids
	},
	"task-delete": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for range s.Count {
			id := p.CreateTask(Task{Title: "To delete"}, false)
			p.DeleteTask(id, true)
			ids = append(ids, id)
		}
		return ids
	},
	"call-end": func(p *Portal, s Scenario) []int64 {
		ids := make([]int64, 0, s.Count)
		for i := range s.Count {
			p.EndCall(Call{PhoneNumber: "+4990612345" + strconv.Itoa(i%10), Duration: 42, CRMEntity: "DEAL", CRMEntityID: 1}, true)
			ids = append(ids, int64(i+1))
		}
		return ids
	},
	"app-test": func(p *Portal, s Scenario) []int64 {
		for range s.Count {
			p.dispatch([]firing{{event: "ONAPPTEST", userID: 1, data: []b24event.Field{
				{Key: "[QUERY][probe]", Value: "fakeportal"}, {Key: "[LANGUAGE_ID]", Value: "en"}}}})
		}
		return nil
	},
}

func withDefault(f map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for x, y := range f {
		out[x] = y
	}
	return out
}

// RunScenario performs s and returns the IDs of the entities it touched.
// Events go to every matching handler; wait for them with Drain.
func (p *Portal) RunScenario(s Scenario) ([]int64, error) {
	run, ok := scenarios[s.Name]
	if !ok {
		return nil, fmt.Errorf("fakeportal: unknown scenario %q (known: %s)", s.Name, ScenarioNames())
	}
	if s.Count < 1 {
		s.Count = 1
	}
	return run(p, s), nil
}
