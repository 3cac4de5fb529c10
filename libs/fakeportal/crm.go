package fakeportal

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// deal holds field values as the portal keeps them: strings, or []string for
// multiple user fields.
type deal struct {
	fields map[string]any
}

// standardDealFields are the non-UF fields with their crm.deal.fields types.
var standardDealFields = []struct{ name, typ, title string }{
	{"ID", "integer", "ID"}, {"TITLE", "string", "Name"}, {"TYPE_ID", "crm_status", "Type"},
	{"STAGE_ID", "crm_status", "Stage"}, {"CATEGORY_ID", "crm_category", "Pipeline"},
	{"STAGE_SEMANTIC_ID", "string", "Stage group"}, {"OPPORTUNITY", "double", "Amount"},
	{"CURRENCY_ID", "crm_currency", "Currency"}, {"COMPANY_ID", "crm_company", "Company"},
	{"CONTACT_ID", "crm_contact", "Contact"}, {"ASSIGNED_BY_ID", "user", "Responsible person"},
	{"CREATED_BY_ID", "user", "Created by"}, {"MODIFY_BY_ID", "user", "Modified by"},
	{"DATE_CREATE", "datetime", "Created on"}, {"DATE_MODIFY", "datetime", "Modified on"},
	{"CLOSED", "char", "Closed"}, {"COMMENTS", "string", "Comment"},
}

var readOnlyDealFields = map[string]bool{"ID": true, "DATE_CREATE": true, "DATE_MODIFY": true, "CREATED_BY_ID": true, "MODIFY_BY_ID": true}

func isStandardDealField(name string) bool {
	for _, f := range standardDealFields {
		if f.name == name {
			return true
		}
	}
	return false
}

// portalZone is the portal's time zone for DATE_* values.
var portalZone = time.FixedZone("MSK", 3*3600)

func (p *Portal) fmtTime(t time.Time) string { return t.In(portalZone).Format(isoLayout) }

// AddDealUserField defines a UF_CRM_* field (type as in
// crm.deal.userfield.add, e.g. "string", "boolean", "double"). Writes to
// undefined fields are ignored, as the real portal does (§5.1).
func (p *Portal) AddDealUserField(name, typ string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dealUF[strings.ToUpper(name)] = typ
}

// CreateDeal adds a deal directly; with fire it sends ONCRMDEALADD like an
// API change would.
func (p *Portal) CreateDeal(fields map[string]string, fire bool) int64 {
	p.mu.Lock()
	id := p.createDeal(anyFields(fields), 1, p.cfg.Clock.Now())
	var f []firing
	if fire {
		f = []firing{dealEvent("ONCRMDEALADD", id, 1, "")}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return id
}

// UpdateDeal changes a deal directly (DATE_MODIFY moves); with fire it sends
// ONCRMDEALUPDATE. It reports whether the deal exists.
func (p *Portal) UpdateDeal(id int64, fields map[string]string, fire bool) bool {
	p.mu.Lock()
	ok := p.updateDeal(id, anyFields(fields), 1, p.cfg.Clock.Now())
	var f []firing
	if ok && fire {
		f = []firing{dealEvent("ONCRMDEALUPDATE", id, 1, "")}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return ok
}

// DeleteDeal removes a deal; with fire it sends ONCRMDEALDELETE.
func (p *Portal) DeleteDeal(id int64, fire bool) bool {
	p.mu.Lock()
	_, ok := p.deals[id]
	delete(p.deals, id)
	var f []firing
	if ok && fire {
		f = []firing{dealEvent("ONCRMDEALDELETE", id, 1, "")}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return ok
}

// BulkEditDeals is the "bulk edit N deals" scenario (§3.4: "if a thousand
// deals are changed simultaneously… the handler will receive a thousand
// calls"): it creates deals if fewer than n exist, sets fields on the first
// n, and fires one ONCRMDEALUPDATE per deal. It returns the deal IDs.
func (p *Portal) BulkEditDeals(n int, fields map[string]string) []int64 {
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	ids := p.sortedDealIDs()
	for len(ids) < n {
		id := p.createDeal(map[string]any{"TITLE": "Deal " + strconv.Itoa(len(ids)+1)}, 1, now)
		ids = append(ids, id)
	}
	ids = ids[:n]
	f := make([]firing, 0, n)
	for _, id := range ids {
		p.updateDeal(id, anyFields(fields), 1, now)
		f = append(f, dealEvent("ONCRMDEALUPDATE", id, 1, ""))
	}
	p.mu.Unlock()
	p.dispatch(f)
	return ids
}

// Deal returns a copy of a deal's fields (multiple values joined by ",").
func (p *Portal) Deal(id int64) (map[string]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	d, ok := p.deals[id]
	if !ok {
		return nil, false
	}
	out := make(map[string]string, len(d.fields))
	for k, v := range d.fields {
		if l, ok := v.([]string); ok {
			out[k] = strings.Join(l, ",")
		} else {
			out[k] = v.(string)
		}
	}
	return out, true
}

func anyFields(f map[string]string) map[string]any {
	out := make(map[string]any, len(f))
	for k, v := range f {
		out[k] = v
	}
	return out
}

func dealEvent(name string, id, user int64, connector string) firing {
	return firing{event: name, data: []b24event.Field{{Key: "[FIELDS][ID]", Value: strconv.FormatInt(id, 10)}}, userID: user, connector: connector}
}

func (p *Portal) sortedDealIDs() []int64 {
	ids := make([]int64, 0, len(p.deals))
	for id := range p.deals {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// createDeal and updateDeal require p.mu.
func (p *Portal) createDeal(fields map[string]any, user int64, now time.Time) int64 {
	p.nextDeal++
	id := p.nextDeal
	ts := p.fmtTime(now)
	d := &deal{fields: map[string]any{
		"ID": strconv.FormatInt(id, 10), "TITLE": "", "TYPE_ID": "SALE", "STAGE_ID": "NEW", "CATEGORY_ID": "0",
		"STAGE_SEMANTIC_ID": "P", "OPPORTUNITY": "0.00", "CURRENCY_ID": "USD", "COMPANY_ID": "0", "CONTACT_ID": "0",
		"ASSIGNED_BY_ID": strconv.FormatInt(user, 10), "CREATED_BY_ID": strconv.FormatInt(user, 10),
		"MODIFY_BY_ID": strconv.FormatInt(user, 10), "DATE_CREATE": ts, "DATE_MODIFY": ts, "CLOSED": "N", "COMMENTS": "",
	}}
	for name := range p.dealUF {
		d.fields[name] = ""
	}
	p.deals[id] = d
	p.setDealFields(d, fields)
	return id
}

func (p *Portal) updateDeal(id int64, fields map[string]any, user int64, now time.Time) bool {
	d, ok := p.deals[id]
	if !ok {
		return false
	}
	p.setDealFields(d, fields)
	d.fields["DATE_MODIFY"] = p.fmtTime(now)
	d.fields["MODIFY_BY_ID"] = strconv.FormatInt(user, 10)
	return true
}

// setDealFields applies known, writable fields; unknown ones are ignored
// silently (§5.1).
func (p *Portal) setDealFields(d *deal, fields map[string]any) {
	for k, v := range fields {
		name := strings.ToUpper(k)
		if readOnlyDealFields[name] {
			continue
		}
		if _, uf := p.dealUF[name]; !uf && !isStandardDealField(name) {
			continue
		}
		if l, ok := v.([]any); ok {
			d.fields[name] = strList(l)
		} else if m, ok := v.(map[string]any); ok {
			d.fields[name] = strList(asList(m))
		} else {
			d.fields[name] = scalar(v)
		}
	}
}

func (p *Portal) dealView(d *deal, sel []string) map[string]any {
	out := map[string]any{}
	std, uf := false, false
	explicit := map[string]bool{}
	for _, s := range sel {
		switch s = strings.ToUpper(s); s {
		case "*":
			std = true
		case "UF_*":
			uf = true
		default:
			explicit[s] = true
		}
	}
	for k, v := range d.fields {
		isUF := strings.HasPrefix(k, "UF_")
		if explicit[k] || (std && !isUF) || (uf && isUF) {
			out[k] = v
		}
	}
	return out
}

func idParam(c *call, key string) (int64, *apiError) {
	id, ok := c.params.int64(key)
	if !ok || id <= 0 {
		return 0, errf(400, "", "ID is not defined or invalid.")
	}
	return id, nil
}

func crmDealGet(p *Portal, c *call) (any, *page, *apiError) {
	id, e := idParam(c, "id")
	if e != nil {
		return nil, nil, e
	}
	d, ok := p.deals[id]
	if !ok {
		// Empty code, description only (§4.4).
		return nil, nil, errf(400, "", "Not found")
	}
	return p.dealView(d, []string{"*", "UF_*"}), nil, nil
}

func crmDealList(p *Portal, c *call) (any, *page, *apiError) {
	filter, _ := c.params.obj("filter")
	sel := strList(c.params.list("select"))
	if len(sel) == 0 {
		sel = []string{"*", "UF_*"}
	}
	var rows []*deal
	for _, id := range p.sortedDealIDs() {
		d := p.deals[id]
		if matchFilter(d.fields, filter) {
			rows = append(rows, d)
		}
	}
	if order, ok := c.params.obj("order"); ok {
		sortRows(rows, order)
	}
	out, pg := paginate(rows, c.params)
	res := make([]any, len(out))
	for i, d := range out {
		res[i] = p.dealView(d, sel)
	}
	return res, pg, nil
}

func crmDealAdd(p *Portal, c *call) (any, *page, *apiError) {
	fields, ok := c.params.obj("fields")
	if !ok {
		return nil, nil, errf(400, "", "Parameter 'fields' must be array.")
	}
	id := p.createDeal(fields, c.who.userID, c.now)
	c.fire = append(c.fire, dealEvent("ONCRMDEALADD", id, c.who.userID, c.connector))
	return id, nil, nil
}

func crmDealUpdate(p *Portal, c *call) (any, *page, *apiError) {
	id, e := idParam(c, "id")
	if e != nil {
		return nil, nil, e
	}
	fields, ok := c.params.obj("fields")
	if !ok {
		return nil, nil, errf(400, "", "Parameter 'fields' must be array.")
	}
	if !p.updateDeal(id, fields, c.who.userID, c.now) {
		return nil, nil, errf(400, "", "Not found")
	}
	c.fire = append(c.fire, dealEvent("ONCRMDEALUPDATE", id, c.who.userID, c.connector))
	return true, nil, nil
}

func crmDealDelete(p *Portal, c *call) (any, *page, *apiError) {
	id, e := idParam(c, "id")
	if e != nil {
		return nil, nil, e
	}
	if _, ok := p.deals[id]; !ok {
		return nil, nil, errf(400, "", "Not found")
	}
	delete(p.deals, id)
	c.fire = append(c.fire, dealEvent("ONCRMDEALDELETE", id, c.who.userID, c.connector))
	return true, nil, nil
}

func crmDealFields(p *Portal, _ *call) (any, *page, *apiError) {
	out := map[string]any{}
	for _, f := range standardDealFields {
		out[f.name] = map[string]any{"type": f.typ, "isRequired": false, "isReadOnly": readOnlyDealFields[f.name],
			"isImmutable": false, "isMultiple": false, "isDynamic": false, "title": f.title}
	}
	for name, typ := range p.dealUF {
		out[name] = map[string]any{"type": typ, "isRequired": false, "isReadOnly": false, "isImmutable": false,
			"isMultiple": false, "isDynamic": true, "title": name, "formLabel": name, "listLabel": name, "filterLabel": name}
	}
	return out, nil, nil
}

// paginate applies start paging with the fixed page size 50; start=-1 skips
// the count (§4.8).
func paginate[T any](rows []T, prm params) ([]T, *page) {
	start, _ := prm.int64("start")
	if start < 0 {
		return rows[:min(50, len(rows))], &page{noCount: true}
	}
	s := min(int(start), len(rows))
	end := min(s+50, len(rows))
	pg := &page{total: len(rows)}
	if end < len(rows) {
		pg.hasNext, pg.next = true, end
	}
	return rows[s:end], pg
}

var filterOps = []string{">=", "<=", "!=", "!@", "=%", "%=", "><", ">", "<", "@", "%", "=", "!"}

// matchFilter evaluates crm-style filters: operator prefixes on field names
// (§5.1).
func matchFilter(fields map[string]any, filter params) bool {
	for key, want := range filter {
		op, name := "=", key
		for _, o := range filterOps {
			if strings.HasPrefix(key, o) {
				op, name = o, key[len(o):]
				break
			}
		}
		got, _ := fields[strings.ToUpper(name)].(string)
		if !matchOp(op, got, want) {
			return false
		}
	}
	return true
}

func matchOp(op, got string, want any) bool {
	switch op {
	case "@", "!@":
		in := false
		for _, w := range asList(want) {
			if compare(got, scalar(w)) == 0 {
				in = true
			}
		}
		return in == (op == "@")
	case "%", "=%", "%=":
		return strings.Contains(strings.ToLower(got), strings.ToLower(strings.Trim(scalar(want), "%")))
	}
	c := compare(got, scalar(want))
	switch op {
	case "=":
		return c == 0
	case "!", "!=":
		return c != 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	}
	return false
}

// compare orders numbers numerically, datetimes chronologically and the
// rest as strings.
func compare(a, b string) int {
	if x, err := strconv.ParseFloat(a, 64); err == nil {
		if y, err := strconv.ParseFloat(b, 64); err == nil {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	if x, err := time.Parse(time.RFC3339, a); err == nil {
		if y, err := time.Parse(time.RFC3339, b); err == nil {
			return x.Compare(y)
		}
	}
	return strings.Compare(a, b)
}

func sortRows(rows []*deal, order params) {
	keys := make([]string, 0, len(order))
	for k := range order {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	sort.SliceStable(rows, func(i, j int) bool {
		for _, k := range keys {
			a, _ := rows[i].fields[strings.ToUpper(k)].(string)
			b, _ := rows[j].fields[strings.ToUpper(k)].(string)
			c := compare(a, b)
			if strings.EqualFold(scalar(order[k]), "DESC") {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
}

var _ = json.Marshal
