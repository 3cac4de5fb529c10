package bitrix

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeResponse: whatever a portal (or a proxy in front of it) answers,
// decoding never panics and yields exactly one of a response or an error.
func FuzzDecodeResponse(f *testing.F) {
	for _, s := range []string{
		`{"result":{"ID":"1"},"time":{"start":1}}`, `{"error":"","error_description":"Not found"}`,
		`<html>502</html>`, `{"result":[],"total":"x","next":null}`, `{"error":{"code":1}}`, ``, `{`,
	} {
		f.Add(200, []byte(s))
		f.Add(503, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r, e := decodeResponse("m", status, body)
		if (r == nil) == (e == nil) {
			t.Fatalf("response %v and error %v", r, e)
		}
		if e != nil {
			_ = e.Error()
			_ = e.Kind()
		}
	})
}

// FuzzDecodeBatch: odd batch result shapes never panic.
func FuzzDecodeBatch(f *testing.F) {
	f.Add([]byte(`{"result":{"a":1},"result_error":[],"result_total":{"a":"3"},"result_time":{"a":{"start":1}}}`))
	f.Add([]byte(`{"result":[1,2],"result_error":{"0":{"error":"X"}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := decodeBatch(json.RawMessage(raw), []BatchCommand{{Key: "a"}, {Key: "0"}})
		if err == nil {
			_ = r.Skipped()
			var v any
			_ = r.Decode("a", &v)
		}
	})
}
