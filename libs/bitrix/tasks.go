package bitrix

import (
	"context"
	"encoding/json"
	"iter"
	"maps"
)

// Task is a task from tasks.task.get; the typed fields mirror the API's
// (see the JSON tags). The response is camelCase although
// select takes UPPER_CASE names (§5.3); Fields keeps every field as sent.
type Task struct {
	ID            ID       `json:"id"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Status        string   `json:"status"`
	CreatedBy     ID       `json:"createdBy"`
	ResponsibleID ID       `json:"responsibleId"`
	Deadline      string   `json:"deadline"`
	ChangedDate   string   `json:"changedDate"`
	GroupID       ID       `json:"groupId"`
	UfCrmTask     []string `json:"ufCrmTask"` // CRM bindings such as "D_1723" (§5.3)
	// Fields is the whole task object.
	Fields map[string]json.RawMessage `json:"-"`
}

// UnmarshalJSON decodes the typed fields and keeps everything in Fields.
// ufCrmTask may be false or an empty object when unset.
func (t *Task) UnmarshalJSON(b []byte) error {
	type plain Task
	var f map[string]json.RawMessage
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	uf := f["ufCrmTask"]
	delete(f, "ufCrmTask")
	clean, _ := json.Marshal(f)
	var p plain
	if err := json.Unmarshal(clean, &p); err != nil {
		return err
	}
	_ = json.Unmarshal(uf, &p.UfCrmTask) // tolerate false/{} for "none"
	if uf != nil {
		f["ufCrmTask"] = uf
	}
	p.Fields = f
	*t = Task(p)
	return nil
}

// GetTask calls tasks.task.get. selectFields are UPPER_CASE names; nil takes
// the default set (which omits UF_CRM_TASK, so pass it when needed, §5.3). A
// missing or inaccessible task answers "result": [] and is KindNotFound.
func (c *Client) GetTask(ctx context.Context, id ID, selectFields ...string) (*Task, error) {
	p := map[string]any{"taskId": id}
	if len(selectFields) > 0 {
		p["select"] = selectFields
	}
	resp, err := c.Do(ctx, "tasks.task.get", p)
	if err != nil {
		return nil, err
	}
	var wrap struct {
		Task json.RawMessage `json:"task"`
	}
	if resp.IsEmptyResult() || json.Unmarshal(resp.Result, &wrap) != nil || emptyJSON(wrap.Task) {
		return nil, &Error{Status: 200, Method: "tasks.task.get", Portal: c.portal, Description: "task " + id.String() + " not found or not accessible", kind: KindNotFound}
	}
	var t Task
	if err := json.Unmarshal(wrap.Task, &t); err != nil {
		return nil, &Error{Status: 200, Method: "tasks.task.get", Portal: c.portal, Description: "decode task: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return &t, nil
}

// TaskQuery selects tasks for ListTasks.
type TaskQuery struct {
	// Filter uses tasks.task.list's UPPER_CASE fields with operator
	// prefixes, e.g. {">CHANGED_DATE": "2026-01-01T00:00:00+00:00"}.
	// Optional; a ">ID" key is overwritten while paging.
	Filter map[string]any
	// Select lists UPPER_CASE field names. Default: the fields Task types,
	// UF_CRM_TASK included (the docs advise always naming them: the
	// method's own default set may change).
	Select []string
}

// taskListSelect is ListTasks' default select: Task's typed fields.
var taskListSelect = []string{"ID", "TITLE", "DESCRIPTION", "STATUS", "CREATED_BY", "RESPONSIBLE_ID",
	"DEADLINE", "CHANGED_DATE", "GROUP_ID", "UF_CRM_TASK"}

// ListTasks walks tasks.task.list with start=-1 and ID paging (§4.8), for
// reconciling large portals. Rows come under result.tasks in camelCase with
// a lower-case id, sent as a string or a number (§4.8 quirks); Task accepts
// both. The sequence stops after the first error.
func (c *Client) ListTasks(ctx context.Context, q TaskQuery) iter.Seq2[Task, error] {
	sel := q.Select
	if len(sel) == 0 {
		sel = taskListSelect
	}
	return Decoded[Task](c.Walk(ctx, "tasks.task.list", map[string]any{"filter": maps.Clone(q.Filter), "select": sel}))
}

// ChecklistItem is a row of task.checklistitem.getlist (§5.4); fields
// mirror the API's (see the JSON tags). ParentID 0
// marks a checklist header.
type ChecklistItem struct {
	ID          ID              `json:"ID"`
	TaskID      ID              `json:"TASK_ID"`
	ParentID    ID              `json:"PARENT_ID"`
	CreatedBy   ID              `json:"CREATED_BY"`
	Title       string          `json:"TITLE"`
	SortIndex   ID              `json:"SORT_INDEX"`
	IsComplete  Bool            `json:"IS_COMPLETE"`
	IsImportant Bool            `json:"IS_IMPORTANT"`
	ToggledBy   ID              `json:"TOGGLED_BY"`
	ToggledDate string          `json:"TOGGLED_DATE"`
	Members     json.RawMessage `json:"MEMBERS,omitempty"`
	Attachments json.RawMessage `json:"ATTACHMENTS,omitempty"` // an object, or [] when none
}

// TaskChecklist calls task.checklistitem.getlist for a task, ordered by ID
// ascending.
func (c *Client) TaskChecklist(ctx context.Context, taskID ID) ([]ChecklistItem, error) {
	var items []ChecklistItem
	resp, err := c.Do(ctx, "task.checklistitem.getlist", map[string]any{"TASKID": taskID, "ORDER": map[string]string{"ID": "asc"}})
	if err != nil {
		return nil, err
	}
	if resp.IsEmptyResult() {
		return nil, nil
	}
	if err := json.Unmarshal(resp.Result, &items); err != nil {
		return nil, &Error{Status: 200, Method: "task.checklistitem.getlist", Portal: c.portal, Description: "decode checklist: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return items, nil
}
