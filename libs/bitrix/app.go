package bitrix

import (
	"context"
	"encoding/json"
)

// AppInfo is app.info's answer; fields mirror the API's (see the JSON
// tags). Installed must be true before the portal
// delivers any event (§1.5).
type AppInfo struct {
	ID             ID     `json:"ID"`
	Code           string `json:"CODE"`
	Version        ID     `json:"VERSION"`
	Status         string `json:"STATUS"` // L local, F free, D demo, T trial, P paid, S subscription
	Installed      Bool   `json:"INSTALLED"`
	PaymentExpired Bool   `json:"PAYMENT_EXPIRED"`
	Days           ID     `json:"DAYS"`
	LanguageID     string `json:"LANGUAGE_ID"`
	License        string `json:"LICENSE"`
}

// AppInfo calls app.info.
func (c *Client) AppInfo(ctx context.Context) (*AppInfo, error) {
	var a AppInfo
	if err := c.Call(ctx, "app.info", nil, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// Feature calls feature.get for a feature code such as
// "rest_offline_extended" (needed for event.offline.get with clear=0, §2.1)
// and reports whether it is enabled. The answer is {"value":"Y"} or a bare
// flag, depending on the portal version.
func (c *Client) Feature(ctx context.Context, code string) (bool, error) {
	resp, err := c.Do(ctx, "feature.get", map[string]any{"CODE": code})
	if err != nil {
		return false, err
	}
	var obj struct {
		Value Bool `json:"value"`
	}
	if json.Unmarshal(resp.Result, &obj) == nil {
		return bool(obj.Value), nil
	}
	var flag Bool
	if err := json.Unmarshal(resp.Result, &flag); err != nil {
		return false, &Error{Status: 200, Method: "feature.get", Portal: c.portal, Description: "decode feature: " + err.Error(), Err: err, kind: KindPermanent}
	}
	return bool(flag), nil
}
