package bitrix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"maps"
	"time"
)

// Deal is a CRM deal as crm.deal.get/list return it: flat UPPER_CASE fields,
// mostly strings, plus UF_CRM_* custom fields (§5.1). The common fields are
// decoded from their UPPER_CASE namesakes (ID, TITLE, STAGE_ID, …); Fields
// keeps every field exactly as sent, for snapshots and diffs.
type Deal struct {
	ID           ID
	Title        string
	StageID      string
	CategoryID   ID
	Opportunity  string // a decimal string; keep it exact
	CurrencyID   string
	AssignedByID ID
	DateCreate   time.Time
	DateModify   time.Time
	// Fields is every field by name, including UF_CRM_*.
	Fields map[string]json.RawMessage
	// Raw is the deal as the portal sent it (one JSON object; set by
	// UnmarshalJSON): a mirror stores it as is instead of encoding Fields
	// again.
	Raw json.RawMessage
}

// UnmarshalJSON decodes a deal, tolerating string/number IDs and dates that
// are empty.
func (d *Deal) UnmarshalJSON(b []byte) error {
	var f map[string]json.RawMessage
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	// The typed copies come from the decoded fields: decoding the whole
	// deal a second time into a struct cost as much as the first pass.
	var v struct {
		ID, CategoryID, AssignedByID                       ID
		Title, StageID, CurrencyID, DateCreate, DateModify string
		Opportunity                                        any
	}
	for _, x := range []struct {
		name string
		dst  any
	}{{"ID", &v.ID}, {"TITLE", &v.Title}, {"STAGE_ID", &v.StageID}, {"CATEGORY_ID", &v.CategoryID},
		{"OPPORTUNITY", &v.Opportunity}, {"CURRENCY_ID", &v.CurrencyID}, {"ASSIGNED_BY_ID", &v.AssignedByID},
		{"DATE_CREATE", &v.DateCreate}, {"DATE_MODIFY", &v.DateModify}} {
		if raw, ok := f[x.name]; ok {
			if err := json.Unmarshal(raw, x.dst); err != nil {
				return fmt.Errorf("deal field %s: %w", x.name, err)
			}
		}
	}
	*d = Deal{ID: v.ID, Title: v.Title, StageID: v.StageID, CategoryID: v.CategoryID,
		CurrencyID: v.CurrencyID, AssignedByID: v.AssignedByID, Fields: f, Raw: bytes.Clone(b),
		DateCreate: parseTime(v.DateCreate), DateModify: parseTime(v.DateModify)}
	if v.Opportunity != nil {
		d.Opportunity = stringify(v.Opportunity)
	}
	return nil
}

// MarshalJSON writes Fields, the deal as the portal sent it.
func (d Deal) MarshalJSON() ([]byte, error) { return json.Marshal(d.Fields) }

// Field returns a field as a string ("" if absent or not a scalar), which is
// how Bitrix24 sends most values.
func (d *Deal) Field(name string) string {
	raw, ok := d.Fields[name]
	if !ok {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	return stringify(v)
}

func stringify(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case float64, bool:
		b, _ := json.Marshal(t)
		return string(b)
	}
	return ""
}

func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// GetDeal calls crm.deal.get. A missing deal is a KindNotFound error
// (Bitrix24 answers 400 "Not found" with an empty code, §4.4).
func (c *Client) GetDeal(ctx context.Context, id ID) (*Deal, error) {
	resp, err := c.Do(ctx, "crm.deal.get", map[string]any{"id": id})
	if err != nil {
		return nil, err
	}
	if resp.IsEmptyResult() {
		return nil, &Error{Status: 200, Method: "crm.deal.get", Portal: c.portal, Description: "deal " + id.String() + " not found", kind: KindNotFound}
	}
	var d Deal
	if err := json.Unmarshal(resp.Result, &d); err != nil {
		return nil, &Error{Status: 200, Method: "crm.deal.get", Portal: c.portal, Description: "decode deal: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return &d, nil
}

// GetDeals fetches many deals with batched crm.deal.get, 50 per request. The
// deals map holds those found; errs holds a per-ID error (KindNotFound for
// missing ones). err is set only when a batch request itself failed.
func (c *Client) GetDeals(ctx context.Context, ids []ID) (deals map[ID]*Deal, errs map[ID]error, err error) {
	res, err := c.GetMany(ctx, "crm.deal.get", ids, func(id ID) any { return map[string]any{"id": id} })
	deals, errs = map[ID]*Deal{}, map[ID]error{}
	if res == nil {
		return deals, errs, err
	}
	for _, id := range ids {
		k := ManyKey(id)
		if _, done := deals[id]; done || !contains(res.Keys, k) {
			continue
		}
		var d Deal
		if derr := res.Decode(k, &d); derr != nil {
			errs[id] = derr
			continue
		}
		deals[id] = &d
	}
	return deals, errs, err
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// DealQuery selects deals for ListDeals.
type DealQuery struct {
	// Filter uses crm.deal.list operators as key prefixes, e.g.
	// {">DATE_MODIFY": "2026-01-01T00:00:00+00:00"} (§5.1).
	Filter map[string]any
	// Select lists fields; default "*" and "UF_*" (every standard and custom
	// field).
	Select []string
}

// ListDeals walks crm.deal.list with start=-1 and ID paging (§4.8), suitable
// for reconciling large portals.
func (c *Client) ListDeals(ctx context.Context, q DealQuery) iter.Seq2[Deal, error] {
	sel := q.Select
	if len(sel) == 0 {
		sel = []string{"*", "UF_*"}
	}
	return Decoded[Deal](c.Walk(ctx, "crm.deal.list", map[string]any{"filter": maps.Clone(q.Filter), "select": sel}))
}

// DealUpdate carries crm.deal.update options (§5.1).
type DealUpdate struct {
	// RegisterSonetEvent and RegisterHistoryEvent map to params
	// REGISTER_SONET_EVENT / REGISTER_HISTORY_EVENT; nil leaves the default.
	RegisterSonetEvent   *bool
	RegisterHistoryEvent *bool // see RegisterSonetEvent
	// AuthConnector tags the write so offline bindings with the same
	// connector do not queue it back to us (§2.4).
	AuthConnector string
}

// UpdateDeal calls crm.deal.update with only the fields to change. It is a
// write: an ambiguous failure is returned, not retried. Note that the update
// fires ONCRMDEALUPDATE back at the platform (§5.1).
func (c *Client) UpdateDeal(ctx context.Context, id ID, fields map[string]any, opt DealUpdate) error {
	p := map[string]any{"id": id, "fields": fields}
	params := map[string]string{}
	if opt.RegisterSonetEvent != nil {
		params["REGISTER_SONET_EVENT"] = yn(*opt.RegisterSonetEvent)
	}
	if opt.RegisterHistoryEvent != nil {
		params["REGISTER_HISTORY_EVENT"] = yn(*opt.RegisterHistoryEvent)
	}
	if len(params) > 0 {
		p["params"] = params
	}
	if opt.AuthConnector != "" {
		p["auth_connector"] = opt.AuthConnector
	}
	var ok Bool
	if err := c.Call(ctx, "crm.deal.update", p, &ok); err != nil {
		return err
	}
	if !ok {
		return &Error{Status: 200, Method: "crm.deal.update", Portal: c.portal, Description: "update returned false", kind: KindPermanent}
	}
	return nil
}

func yn(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// FieldInfo describes one field in crm.deal.fields; fields mirror the API's
// (see the JSON tags).
type FieldInfo struct {
	Type       string `json:"type"`
	IsRequired bool   `json:"isRequired"`
	IsReadOnly bool   `json:"isReadOnly"`
	IsMultiple bool   `json:"isMultiple"`
	Title      string `json:"title"`
	// FormLabel and ListLabel are set for UF_CRM_* fields.
	FormLabel string `json:"formLabel,omitempty"`
	ListLabel string `json:"listLabel,omitempty"`
}

// DealFields calls crm.deal.fields: every deal field, including UF_CRM_*.
func (c *Client) DealFields(ctx context.Context) (map[string]FieldInfo, error) {
	var out map[string]FieldInfo
	if err := c.Call(ctx, "crm.deal.fields", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}
