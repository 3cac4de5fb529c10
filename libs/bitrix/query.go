package bitrix

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/b24hub/b24hub/libs/b24event"
)

// encodeQuery renders params the way PHP's http_build_query does, which is
// how batch sub-commands are written (§4.7: "cmd values are plain query
// strings"): nested objects and arrays become key[sub][0]=v, booleans 1/0,
// nulls and empty arrays are dropped. params is anything encoding/json
// accepts; field order is kept (struct order, or sorted keys for Go maps).
// The flattening and escaping are b24event's, the same code the fake portal
// and the ingress use.
func encodeQuery(params any) (string, error) {
	if params == nil {
		return "", nil
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return "", fmt.Errorf("bitrix: encode params: %w", err)
	}
	fields, err := b24event.FormFromJSON(raw)
	if err != nil {
		return "", fmt.Errorf("bitrix: encode params: %w", err)
	}
	return string(b24event.EncodeForm(fields)), nil
}

// withAuth splices "auth":token into a JSON object body, keeping the rest of
// the body byte-for-byte (batch cmd order matters, §4.7).
func withAuth(body []byte, token string) []byte {
	if token == "" {
		return body
	}
	tok, _ := json.Marshal(token)
	b := bytes.TrimSpace(body)
	var out bytes.Buffer
	out.WriteString(`{"auth":`)
	out.Write(tok)
	if len(b) >= 2 && b[0] == '{' {
		inner := bytes.TrimSpace(b[1 : len(b)-1])
		if len(inner) > 0 {
			out.WriteByte(',')
			out.Write(inner)
		}
	}
	out.WriteByte('}')
	return out.Bytes()
}
