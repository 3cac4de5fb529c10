package bitrix

import (
	"context"
	"encoding/json"
	"iter"
)

// CallRecord is a row of voximplant.statistic.get (§5.5); fields mirror the
// API's (see the JSON tags). Codes and types
// stay strings: CALL_FAILED_CODE has values like "603-S" and "OTHER" (§9.7).
type CallRecord struct {
	ID               ID     `json:"ID"`
	CallID           string `json:"CALL_ID"`
	ExternalCallID   string `json:"EXTERNAL_CALL_ID"`
	CallType         string `json:"CALL_TYPE"`
	PortalUserID     ID     `json:"PORTAL_USER_ID"`
	PortalNumber     string `json:"PORTAL_NUMBER"`
	PhoneNumber      string `json:"PHONE_NUMBER"`
	CallDuration     ID     `json:"CALL_DURATION"`
	CallStartDate    string `json:"CALL_START_DATE"`
	CallFailedCode   string `json:"CALL_FAILED_CODE"`
	CallFailedReason string `json:"CALL_FAILED_REASON"`
	Cost             string `json:"COST"`
	CostCurrency     string `json:"COST_CURRENCY"`
	CRMEntityType    string `json:"CRM_ENTITY_TYPE"`
	CRMEntityID      ID     `json:"CRM_ENTITY_ID"`
	CRMActivityID    ID     `json:"CRM_ACTIVITY_ID"`
	// RecordFileID is the Disk file of the recording, 0 while there is none
	// yet: it may appear some time after the call ends (§5.5), so re-poll.
	RecordFileID  ID     `json:"RECORD_FILE_ID"`
	CallRecordURL string `json:"CALL_RECORD_URL"`
}

// UnmarshalJSON tolerates numbers where strings are documented (COST,
// CALL_TYPE) and vice versa.
func (r *CallRecord) UnmarshalJSON(b []byte) error {
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for k, v := range m {
		if f, ok := v.(float64); ok {
			if k == "COST" || k == "CALL_TYPE" || k == "CALL_FAILED_CODE" || k == "CALL_ID" || k == "PORTAL_NUMBER" || k == "PHONE_NUMBER" {
				m[k] = stringify(f)
			}
		}
	}
	clean, _ := json.Marshal(m)
	type plain CallRecord
	var p plain
	if err := json.Unmarshal(clean, &p); err != nil {
		return err
	}
	*r = CallRecord(p)
	return nil
}

// FindCall returns the statistics row of one call by CALL_ID (the value in
// ONVOXIMPLANTCALLEND, §9.7), or KindNotFound.
func (c *Client) FindCall(ctx context.Context, callID string) (*CallRecord, error) {
	resp, err := c.Do(ctx, "voximplant.statistic.get", map[string]any{"FILTER": map[string]any{"CALL_ID": callID}})
	if err != nil {
		return nil, err
	}
	var rows []CallRecord
	if !resp.IsEmptyResult() {
		if err := json.Unmarshal(resp.Result, &rows); err != nil {
			return nil, &Error{Status: 200, Method: "voximplant.statistic.get", Portal: c.portal, Description: "decode calls: " + err.Error(), Err: err, kind: KindPermanent}
		}
	}
	if len(rows) == 0 {
		return nil, &Error{Status: 200, Method: "voximplant.statistic.get", Portal: c.portal, Description: "call " + callID + " not found", kind: KindNotFound}
	}
	return &rows[0], nil
}

// Calls iterates voximplant.statistic.get rows matching filter (FILTER
// operators as key prefixes, §5.5), with start paging.
func (c *Client) Calls(ctx context.Context, filter map[string]any) iter.Seq2[CallRecord, error] {
	return Decoded[CallRecord](c.List(ctx, "voximplant.statistic.get", map[string]any{"FILTER": filter, "SORT": "ID", "ORDER": "ASC"}))
}
