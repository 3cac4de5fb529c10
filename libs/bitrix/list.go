package bitrix

import (
	"bytes"
	"context"
	"encoding/json"
	"iter"
	"maps"
)

// PageSize is the fixed page size of list methods (§4.8).
const PageSize = 50

// List iterates every row of a list method with start/next paging (§4.8).
// It asks the portal to count the total, which is slow on large sets; prefer
// Walk there. The sequence stops after the first error.
func (c *Client) List(ctx context.Context, method string, params map[string]any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		p := maps.Clone(params)
		if p == nil {
			p = map[string]any{}
		}
		start := 0
		for {
			p["start"] = start
			resp, err := c.Do(ctx, method, p)
			if err != nil {
				yield(nil, err)
				return
			}
			rows, err := listRows(resp.Result)
			if err != nil {
				yield(nil, &Error{Status: 200, Method: method, Portal: c.portal, Description: err.Error(), Err: err, kind: KindPermanent})
				return
			}
			for _, r := range rows {
				if !yield(r, nil) {
					return
				}
			}
			if !resp.HasNext || resp.Next <= start {
				return
			}
			start = resp.Next
		}
	}
}

// Walk iterates a list method the fast way for large sets (§4.8): start=-1
// (no count), order by ID ascending, and a ">ID" filter on the last ID seen,
// stopping at a short page. params may carry "filter" (a map[string]any,
// kept and extended) and "select" ("ID" is added if missing); any "order" is
// replaced. Rows must carry "ID" or "id".
func (c *Client) Walk(ctx context.Context, method string, params map[string]any) iter.Seq2[json.RawMessage, error] {
	return func(yield func(json.RawMessage, error) bool) {
		p := maps.Clone(params)
		if p == nil {
			p = map[string]any{}
		}
		filter, _ := p["filter"].(map[string]any)
		filter = maps.Clone(filter) // the caller's map is never modified
		if filter == nil {
			filter = map[string]any{}
		}
		if sel, ok := p["select"].([]string); ok && len(sel) > 0 && !containsFold(sel, "ID") {
			p["select"] = append(append([]string(nil), sel...), "ID")
		}
		p["order"] = map[string]string{"ID": "ASC"}
		p["start"] = -1
		var last ID
		for {
			if last > 0 {
				filter[">ID"] = last
			}
			p["filter"] = filter
			resp, err := c.Do(ctx, method, p)
			if err != nil {
				yield(nil, err)
				return
			}
			rows, err := listRows(resp.Result)
			if err != nil {
				yield(nil, &Error{Status: 200, Method: method, Portal: c.portal, Description: err.Error(), Err: err, kind: KindPermanent})
				return
			}
			for _, r := range rows {
				id, err := rowID(r)
				if err != nil {
					yield(nil, &Error{Status: 200, Method: method, Portal: c.portal, Description: "row without ID: " + err.Error(), Err: err, kind: KindPermanent})
					return
				}
				if id <= last {
					continue // a portal ignoring the filter must not loop us forever
				}
				last = id
				if !yield(r, nil) {
					return
				}
			}
			if len(rows) < PageSize {
				return
			}
		}
	}
}

// Decoded turns a raw row sequence into typed rows.
func Decoded[T any](seq iter.Seq2[json.RawMessage, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		for raw, err := range seq {
			var v T
			if err == nil {
				if derr := json.Unmarshal(raw, &v); derr != nil {
					err = &Error{Description: "decode row: " + derr.Error(), Err: derr, kind: KindPermanent}
				}
			}
			if !yield(v, err) || err != nil {
				return
			}
		}
	}
}

// listRows finds the rows: a plain array, or the single array inside an
// object such as crm.item.list's {"items":[…]} or tasks.task.list's
// {"tasks":[…]} (§4.8).
func listRows(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if emptyJSON(raw) {
		return nil, nil
	}
	var rows []json.RawMessage
	if raw[0] == '[' {
		err := json.Unmarshal(raw, &rows)
		return rows, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	for _, v := range obj {
		if v = bytes.TrimSpace(v); len(v) > 0 && v[0] == '[' {
			err := json.Unmarshal(v, &rows)
			return rows, err
		}
	}
	return nil, nil
}

func rowID(raw json.RawMessage) (ID, error) {
	var r struct {
		Upper *ID `json:"ID"`
		Lower *ID `json:"id"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return 0, err
	}
	switch {
	case r.Upper != nil:
		return *r.Upper, nil
	case r.Lower != nil:
		return *r.Lower, nil
	}
	return 0, errNoID
}

var errNoID = &Error{Description: "no ID field", kind: KindPermanent}

func containsFold(ss []string, s string) bool {
	for _, x := range ss {
		if x == s || x == "*" {
			return true
		}
	}
	return false
}
