package bitrix

import (
	"encoding/json"
	"testing"
)

func TestDecodeBatchShapes(t *testing.T) {
	cmds := []BatchCommand{{Key: "a", Method: "crm.deal.get"}, {Key: "b", Method: "crm.deal.get"}, {Key: "c", Method: "crm.deal.update"}}
	tests := []struct {
		name        string
		raw         string
		wantResults int
		wantErrs    int
		wantSkipped int
	}{
		{"all ok, errors as PHP empty array", `{"result":{"a":{"ID":"1"},"b":{"ID":"2"},"c":true},"result_error":[],"result_total":[],"result_next":[],"result_time":{"a":{"start":1}}}`, 3, 0, 0},
		{"one failed", `{"result":{"a":{"ID":"1"},"c":true},"result_error":{"b":{"error":"","error_description":"Not found"}},"result_total":[],"result_next":[],"result_time":[]}`, 2, 1, 0},
		{"halted", `{"result":{"a":{"ID":"1"}},"result_error":{"b":{"error":"ERROR_CORE","error_description":"x"}}}`, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := decodeBatch(json.RawMessage(tt.raw), cmds)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Results) != tt.wantResults || len(r.Errors) != tt.wantErrs || len(r.Skipped()) != tt.wantSkipped {
				t.Fatalf("got %d results, %d errors, skipped %v", len(r.Results), len(r.Errors), r.Skipped())
			}
			if e := r.Errors["b"]; e != nil && e.Method != "crm.deal.get" {
				t.Fatalf("sub-error method %q", e.Method)
			}
		})
	}
	// Numeric keys come back as a JSON array.
	r, err := decodeBatch(json.RawMessage(`{"result":[{"ID":"1"},{"ID":"2"}],"result_error":[]}`), []BatchCommand{{Key: "0"}, {Key: "1"}})
	if err != nil || len(r.Results) != 2 || r.Results["1"] == nil {
		t.Fatalf("array-shaped result: %v %v", r, err)
	}
}

func TestEncodeBatch(t *testing.T) {
	body, reads, err := encodeBatch(true, []BatchCommand{
		{Key: "z", Method: "crm.deal.get", Params: map[string]any{"id": 1}},
		{Key: "a", Method: "crm.deal.update", Params: map[string]any{"id": Ref("z", "ID"), "fields": map[string]any{"TITLE": "x y"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"halt":1,"cmd":{"z":"crm.deal.get?id=1","a":"crm.deal.update?fields%5BTITLE%5D=x+y\u0026id=%24result%5Bz%5D%5BID%5D"}}`
	if string(body) != want || reads {
		t.Fatalf("got %s reads=%v", body, reads)
	}
	if _, _, err := encodeBatch(false, []BatchCommand{{Key: "a", Method: "batch"}}); err == nil {
		t.Fatal("nested batch accepted")
	}
	if _, _, err := encodeBatch(false, []BatchCommand{{Key: "a", Method: "x"}, {Key: "a", Method: "y"}}); err == nil {
		t.Fatal("duplicate key accepted")
	}
}
