package fakeportal

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Task is a task in the fake's model; tasks.task.get answers its fields
// in camelCase (§5.3).
type Task struct {
	ID            int64
	Title         string
	Description   string
	Status        string // "2" pending, "3" in progress, "5" completed…; default "2"
	CreatedBy     int64
	ResponsibleID int64
	Deadline      time.Time
	GroupID       int64
	// UfCrmTask are CRM bindings such as "D_12" (deal 12), §5.3.
	UfCrmTask []string
}

// ChecklistItem is a task checklist row (§5.4), answered with UPPER_CASE
// names. ParentID 0 is a checklist header.
type ChecklistItem struct {
	ID         int64
	TaskID     int64
	ParentID   int64
	Title      string
	IsComplete bool
	SortIndex  int
	CreatedBy  int64
}

type task struct {
	Task
	changed time.Time
	items   []*ChecklistItem
}

// CreateTask adds a task (ID assigned when zero); with fire it sends
// ONTASKADD.
func (p *Portal) CreateTask(t Task, fire bool) int64 {
	p.mu.Lock()
	if t.ID == 0 {
		p.nextTask++
		t.ID = p.nextTask
	} else if t.ID > p.nextTask {
		p.nextTask = t.ID
	}
	if t.Status == "" {
		t.Status = "2"
	}
	if t.CreatedBy == 0 {
		t.CreatedBy = 1
	}
	if t.ResponsibleID == 0 {
		t.ResponsibleID = t.CreatedBy
	}
	p.tasks[t.ID] = &task{Task: t, changed: p.cfg.Clock.Now()}
	var f []firing
	if fire {
		f = []firing{taskEvent("ONTASKADD", t.ID)}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return t.ID
}

// UpdateTask changes a task through edit; with fire it sends ONTASKUPDATE.
func (p *Portal) UpdateTask(id int64, edit func(*Task), fire bool) bool {
	p.mu.Lock()
	t, ok := p.tasks[id]
	if ok {
		edit(&t.Task)
		t.ID = id
		t.changed = p.cfg.Clock.Now()
	}
	var f []firing
	if ok && fire {
		f = []firing{taskEvent("ONTASKUPDATE", id)}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return ok
}

// DeleteTask removes a task; with fire it sends ONTASKDELETE.
func (p *Portal) DeleteTask(id int64, fire bool) bool {
	p.mu.Lock()
	_, ok := p.tasks[id]
	delete(p.tasks, id)
	var f []firing
	if ok && fire {
		f = []firing{taskEvent("ONTASKDELETE", id)}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return ok
}

// AddChecklistItem appends a checklist row to a task and returns its ID (0
// if the task does not exist). It fires nothing: checklist edits surface as
// ONTASKUPDATE in Bitrix24, so fire that with UpdateTask if needed.
func (p *Portal) AddChecklistItem(taskID, parentID int64, title string, complete bool) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.tasks[taskID]
	if !ok {
		return 0
	}
	p.nextItem++
	t.items = append(t.items, &ChecklistItem{ID: p.nextItem, TaskID: taskID, ParentID: parentID, Title: title,
		IsComplete: complete, SortIndex: len(t.items), CreatedBy: t.CreatedBy})
	return p.nextItem
}

// taskEvent builds the documented task event data (§3.3): the "before"
// part holds only the ID, and missing parts are the string "undefined".
func taskEvent(name string, id int64) firing {
	sid := strconv.FormatInt(id, 10)
	var data []b24event.Field
	switch name {
	case "ONTASKADD":
		data = []b24event.Field{{Key: "[FIELDS_BEFORE]", Value: "undefined"}, {Key: "[FIELDS_AFTER][ID]", Value: sid},
			{Key: "[IS_ACCESSIBLE_BEFORE]", Value: "N"}, {Key: "[IS_ACCESSIBLE_AFTER]", Value: "undefined"}}
	case "ONTASKUPDATE":
		data = []b24event.Field{{Key: "[FIELDS_BEFORE][ID]", Value: sid}, {Key: "[FIELDS_AFTER][ID]", Value: sid},
			{Key: "[IS_ACCESSIBLE_BEFORE]", Value: "undefined"}, {Key: "[IS_ACCESSIBLE_AFTER]", Value: "undefined"}}
	case "ONTASKDELETE":
		data = []b24event.Field{{Key: "[FIELDS_BEFORE][ID]", Value: sid}, {Key: "[FIELDS_AFTER]", Value: "undefined"},
			{Key: "[IS_ACCESSIBLE_BEFORE]", Value: "undefined"}, {Key: "[IS_ACCESSIBLE_AFTER]", Value: "N"}}
	}
	return firing{event: name, data: data, userID: 1}
}

var taskSelect = []struct{ upper, camel string }{
	{"ID", "id"}, {"TITLE", "title"}, {"DESCRIPTION", "description"}, {"STATUS", "status"},
	{"CREATED_BY", "createdBy"}, {"RESPONSIBLE_ID", "responsibleId"}, {"DEADLINE", "deadline"},
	{"CHANGED_DATE", "changedDate"}, {"GROUP_ID", "groupId"}, {"UF_CRM_TASK", "ufCrmTask"},
}

func tasksTaskGet(p *Portal, c *call) (any, *page, *apiError) {
	id, ok := c.params.int64("taskId")
	if !ok {
		return nil, nil, errf(400, "100", "Invalid value for \"taskId\" parameter")
	}
	t, found := p.tasks[id]
	if !found {
		// A missing or inaccessible task answers an empty array (§5.3).
		return []any{}, nil, nil
	}
	return map[string]any{"task": p.taskView(t, taskSelection(c.params), false)}, nil, nil
}

// taskSelection reads select: UPPER_CASE names as documented, or the
// camelCase names of the answer; "*" is the default set.
func taskSelection(prm params) map[string]bool {
	sel := map[string]bool{}
	for _, s := range strList(prm.list("select")) {
		name := strings.ToUpper(s)
		for _, f := range taskSelect {
			if strings.EqualFold(s, f.camel) {
				name = f.upper
			}
		}
		sel[name] = true
	}
	return sel
}

// taskView answers a task in camelCase (§5.3). An empty selection and "*"
// take every field except UF_CRM_TASK, which comes only when selected.
// withID adds the id whatever was selected, as lists do: their rows are
// paged by it.
func (p *Portal) taskView(t *task, sel map[string]bool, withID bool) map[string]any {
	out := map[string]any{}
	for _, f := range taskSelect {
		if (len(sel) == 0 && f.upper != "UF_CRM_TASK") || sel[f.upper] || sel["*"] && f.upper != "UF_CRM_TASK" ||
			withID && f.upper == "ID" {
			out[f.camel] = p.taskField(t, f.upper)
		}
	}
	return out
}

func (p *Portal) taskField(t *task, name string) any {
	switch name {
	case "ID":
		return strconv.FormatInt(t.ID, 10)
	case "TITLE":
		return t.Title
	case "DESCRIPTION":
		return t.Description
	case "STATUS":
		return t.Status
	case "CREATED_BY":
		return strconv.FormatInt(t.CreatedBy, 10)
	case "RESPONSIBLE_ID":
		return strconv.FormatInt(t.ResponsibleID, 10)
	case "DEADLINE":
		if t.Deadline.IsZero() {
			return nil
		}
		return p.fmtTime(t.Deadline)
	case "CHANGED_DATE":
		return p.fmtTime(t.changed)
	case "GROUP_ID":
		return strconv.FormatInt(t.GroupID, 10)
	case "UF_CRM_TASK":
		if len(t.UfCrmTask) == 0 {
			return false
		}
		return t.UfCrmTask
	}
	return nil
}

func taskChecklistGetList(p *Portal, c *call) (any, *page, *apiError) {
	id, ok := c.params.int64("TASKID")
	if !ok {
		id, ok = c.params.int64("0") // positional form
	}
	t, found := p.tasks[id]
	if !ok || !found {
		return nil, nil, errf(400, "ERROR_CORE", "TASKS_ERROR_EXCEPTION_#256; Param #0 (taskId) for method ctaskchecklistitem::getlist() expected to be of type \"integer\", but given something else.; 256/TE/WRONG_ARGUMENTS")
	}
	items := append([]*ChecklistItem(nil), t.items...)
	desc := true // default ID desc (§5.4)
	if order, ok := c.params.obj("ORDER"); ok {
		for _, v := range order {
			desc = strings.EqualFold(scalar(v), "desc")
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if desc {
			return items[i].ID > items[j].ID
		}
		return items[i].ID < items[j].ID
	})
	out := make([]any, len(items))
	for i, it := range items {
		var parent any = strconv.FormatInt(it.ParentID, 10)
		if it.ParentID == 0 {
			parent = 0 // PARENT_ID is a number 0 or a string, mixed (§5.4)
		}
		out[i] = map[string]any{
			"ID": strconv.FormatInt(it.ID, 10), "TASK_ID": strconv.FormatInt(it.TaskID, 10), "PARENT_ID": parent,
			"CREATED_BY": strconv.FormatInt(it.CreatedBy, 10), "TITLE": it.Title, "SORT_INDEX": strconv.Itoa(it.SortIndex),
			"IS_COMPLETE": yn(it.IsComplete), "IS_IMPORTANT": "N", "TOGGLED_BY": nil, "TOGGLED_DATE": "",
			"MEMBERS": []any{}, "ATTACHMENTS": []any{},
		}
	}
	return out, nil, nil
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}
