package fakeportal

import (
	"maps"
	"strconv"
	"strings"
)

// CreateContact adds a CRM contact (crm.contact.get serves it: ID,
// NAME, LAST_NAME, EMAIL as a list of {VALUE, VALUE_TYPE}, DATE_CREATE,
// DATE_MODIFY, plus the given fields as strings); with fire it sends
// ONCRMCONTACTADD like an API change would. It returns the contact's ID.
func (p *Portal) CreateContact(fields map[string]string, fire bool) int64 {
	p.mu.Lock()
	p.nextContact++
	id := p.nextContact
	ts := p.fmtTime(p.cfg.Clock.Now())
	c := map[string]string{"ID": strconv.FormatInt(id, 10), "NAME": "", "LAST_NAME": "", "EMAIL": "",
		"DATE_CREATE": ts, "DATE_MODIFY": ts}
	maps.Copy(c, fields)
	p.contacts[id] = c
	var f []firing
	if fire {
		f = []firing{dealEvent("ONCRMCONTACTADD", id, 1, "")}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return id
}

// crmContactGet answers like crm.contact.get: EMAIL is a multi-field, a
// list of {ID, VALUE, VALUE_TYPE}, absent when empty.
func crmContactGet(p *Portal, c *call) (any, *page, *apiError) {
	id, e := idParam(c, "id")
	if e != nil {
		return nil, nil, e
	}
	ct, ok := p.contacts[id]
	if !ok {
		return nil, nil, errf(400, "", "Not found")
	}
	out := make(map[string]any, len(ct))
	for k, v := range ct {
		out[k] = v
	}
	delete(out, "EMAIL")
	if ct["EMAIL"] != "" {
		out["HAS_EMAIL"] = "Y"
		out["EMAIL"] = []map[string]string{{"ID": strconv.FormatInt(id, 10), "VALUE": ct["EMAIL"], "VALUE_TYPE": "WORK"}}
	} else {
		out["HAS_EMAIL"] = "N"
	}
	return out, nil, nil
}

// CreateFor creates, without an event, an entity of the kind event is
// about — a deal for ONCRMDEAL*, a contact for ONCRMCONTACT*, a task for
// ONTASK* — with demo fields numbered n, and returns its ID; for any other
// event it creates nothing and returns n. A consumer's generated
// conformance test names such an entity in each fixture, so a handler that
// fetches what its event is about finds it.
func (p *Portal) CreateFor(event string, n int) int64 {
	num := strconv.Itoa(n)
	switch {
	case strings.HasPrefix(event, "ONCRMDEAL"):
		return p.CreateDeal(map[string]string{"TITLE": "Deal " + num, "OPPORTUNITY": num + "00"}, false)
	case strings.HasPrefix(event, "ONCRMCONTACT"):
		return p.CreateContact(map[string]string{"NAME": "Contact", "LAST_NAME": num, "EMAIL": "contact" + num + "@example.com"}, false)
	case strings.HasPrefix(event, "ONTASK"):
		return p.CreateTask(Task{Title: "Task " + num}, false)
	}
	return int64(n)
}
