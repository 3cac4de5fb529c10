package fakeportal

import (
	"sort"
	"strconv"
	"strings"
	"time"
)

// taskFilterFields are the tasks.task.list filter fields the fake models,
// with their comparison: numbers, datetimes or strings. STATUS filters like
// REAL_STATUS: the fake has no meta-statuses (overdue, unviewed…).
var taskFilterFields = map[string]string{
	"ID": "number", "CREATED_BY": "number", "RESPONSIBLE_ID": "number", "GROUP_ID": "number",
	"REAL_STATUS": "number", "STATUS": "number", "TITLE": "string",
	"CHANGED_DATE": "time", "DEADLINE": "time",
}

// taskOrderFields are the documented sort keys the fake models; any other
// key is the documented "Invalid sorting key" error.
var taskOrderFields = map[string]bool{
	"ID": true, "TITLE": true, "CHANGED_DATE": true, "DEADLINE": true, "REAL_STATUS": true, "GROUP_ID": true,
}

// tasksTaskList answers tasks.task.list: {"tasks":[…camelCase…]} with
// total and next, 50 rows a page, start=-1 without the count (§4.8). The
// filter takes UPPER_CASE fields with an operator prefix (!, <, <=, >, >=;
// none is equality, a list is "one of"); fields the fake does not model are
// ignored. order defaults to ID descending, as documented. Rows always
// carry id: list paging needs it.
func tasksTaskList(p *Portal, c *call) (any, *page, *apiError) {
	filter, _ := c.params.obj("filter")
	type sortKey struct {
		field string
		desc  bool
	}
	keys := []sortKey{{"ID", true}}
	if order, ok := c.params.obj("order"); ok && len(order) > 0 {
		// A JSON object's key order is lost in params; several keys sort
		// in name order (callers that page use one key).
		names := make([]string, 0, len(order))
		for k := range order {
			names = append(names, k)
		}
		sort.Strings(names)
		keys = keys[:0]
		for _, k := range names {
			f := strings.ToUpper(k)
			if !taskOrderFields[f] {
				return nil, nil, errf(400, "0", "Invalid sorting key (internal error)")
			}
			keys = append(keys, sortKey{f, strings.EqualFold(scalar(order[k]), "desc")})
		}
	}
	var rows []*task
	for _, t := range p.tasks {
		if p.taskMatches(t, filter) {
			rows = append(rows, t)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		for _, k := range keys {
			c := p.compareTaskField(k.field, rows[i], rows[j])
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return rows[i].ID < rows[j].ID
	})
	out, pg := paginate(rows, c.params)
	sel := taskSelection(c.params)
	res := make([]any, len(out))
	for i, t := range out {
		res[i] = p.taskView(t, sel, true)
	}
	return map[string]any{"tasks": res}, pg, nil
}

// taskValue is a task's field as filters and sorting see it: a string for
// numbers and strings, a time for datetimes (zero when unset).
func (p *Portal) taskValue(t *task, field string) (string, time.Time) {
	switch field {
	case "ID":
		return strconv.FormatInt(t.ID, 10), time.Time{}
	case "CREATED_BY":
		return strconv.FormatInt(t.CreatedBy, 10), time.Time{}
	case "RESPONSIBLE_ID":
		return strconv.FormatInt(t.ResponsibleID, 10), time.Time{}
	case "GROUP_ID":
		return strconv.FormatInt(t.GroupID, 10), time.Time{}
	case "REAL_STATUS", "STATUS":
		return t.Status, time.Time{}
	case "TITLE":
		return t.Title, time.Time{}
	case "CHANGED_DATE":
		// The portal keeps whole seconds, as it shows them.
		return "", t.changed.Truncate(time.Second)
	case "DEADLINE":
		return "", t.Deadline.Truncate(time.Second)
	}
	return "", time.Time{}
}

func (p *Portal) compareTaskField(field string, a, b *task) int {
	as, at := p.taskValue(a, field)
	bs, bt := p.taskValue(b, field)
	if taskFilterFields[field] == "time" {
		return at.Compare(bt)
	}
	return compare(as, bs)
}

// taskMatches evaluates a tasks.task.list filter.
func (p *Portal) taskMatches(t *task, filter params) bool {
	for key, want := range filter {
		op, name := "=", strings.ToUpper(key)
		for _, o := range []string{">=", "<=", "!=", ">", "<", "!", "="} {
			if strings.HasPrefix(name, o) {
				op, name = o, name[len(o):]
				break
			}
		}
		kind, modeled := taskFilterFields[name]
		if !modeled {
			continue
		}
		got, gotTime := p.taskValue(t, name)
		if op == "!=" {
			op = "!"
		}
		if l, ok := want.([]any); ok || isMap(want) {
			if op != "=" && op != "!" {
				return false
			}
			if !ok {
				l = asList(want)
			}
			in := false
			for _, w := range l {
				if c, ok := taskCompare(kind, got, gotTime, w); ok && c == 0 {
					in = true
				}
			}
			if in != (op == "=") {
				return false
			}
			continue
		}
		c, ok := taskCompare(kind, got, gotTime, want)
		if !ok {
			return false
		}
		switch op {
		case "=":
			ok = c == 0
		case "!":
			ok = c != 0
		case ">":
			ok = c > 0
		case ">=":
			ok = c >= 0
		case "<":
			ok = c < 0
		case "<=":
			ok = c <= 0
		}
		if !ok {
			return false
		}
	}
	return true
}

func isMap(v any) bool {
	_, ok := v.(map[string]any)
	return ok
}

// taskCompare compares a task's value with a filter value; ok is false
// when neither can be compared (an unset datetime, or a filter date that
// does not parse), and then the condition fails.
func taskCompare(kind, got string, gotTime time.Time, want any) (c int, ok bool) {
	if kind != "time" {
		return compare(got, scalar(want)), true
	}
	w, ok := parsePortalTime(scalar(want))
	if !ok || gotTime.IsZero() {
		return 0, false
	}
	return gotTime.Compare(w), true
}

// parsePortalTime reads the date forms REST callers send: ISO-8601 with a
// zone, or without one (then in the portal's zone), or a bare date.
func parsePortalTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, true
	}
	for _, layout := range []string{"2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, portalZone); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
