package bitrix

import (
	"testing"
	"time"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind Kind // 0: success
		wantCode string
	}{
		{"success", 200, `{"result":{"ID":"1"},"time":{"start":1.5,"operating_reset_at":1700000000,"operating":"0.5"}}`, 0, ""},
		{"list with next", 200, `{"result":[],"total":"120","next":50}`, 0, ""},
		{"empty error code", 400, `{"error":"","error_description":"Parameter 'fields' must be array."}`, KindPermanent, ""},
		{"query limit", 503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`, KindQueryLimit, "QUERY_LIMIT_EXCEEDED"},
		{"html page under load", 502, `<html><body><h1>502 Bad Gateway</h1></body></html>`, KindTransient, ""},
		{"html with 200", 200, `<!DOCTYPE html><html>maintenance</html>`, KindTransient, ""},
		{"html 404", 404, `<html>not here</html>`, KindPermanent, ""},
		{"rest v3 error object", 400, `{"error":{"code":"BITRIX_REST_V3_EXCEPTION_X","message":"bad"}}`, KindPermanent, "BITRIX_REST_V3_EXCEPTION_X"},
		{"numeric tasks code", 400, `{"error":100,"error_description":"x"}`, KindPermanent, "100"},
		{"status without body", 500, `{}`, KindTransient, ""},
		{"empty body", 503, ``, KindTransient, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, e := decodeResponse("m", tt.status, []byte(tt.body))
			if tt.wantKind == 0 {
				if e != nil || r == nil {
					t.Fatalf("want success, got %v", e)
				}
				return
			}
			if e == nil {
				t.Fatalf("want error, got %+v", r)
			}
			if e.Kind() != tt.wantKind || e.Code != tt.wantCode || e.Status != tt.status {
				t.Fatalf("got kind %v code %q status %d", e.Kind(), e.Code, e.Status)
			}
		})
	}
	r, _ := decodeResponse("m", 200, []byte(`{"result":[],"total":"120","next":50,"time":{"operating_reset_at":1700000000}}`))
	if r.Total != 120 || r.Next != 50 || !r.HasNext || !r.IsEmptyResult() || !r.Time.OperatingResetAt.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("got %+v", r)
	}
}

func TestOperationLimitResetFromBody(t *testing.T) {
	_, e := decodeResponse("crm.deal.update", 429, []byte(`{"error":"OPERATION_TIME_LIMIT","error_description":"Method is blocked due to operation time limit.","time":{"operating_reset_at":1700000600}}`))
	if e.Kind() != KindOperationLimit || !e.ResetAt.Equal(time.Unix(1700000600, 0)) {
		t.Fatalf("got %+v", e)
	}
}
