package onprem

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Redact returns the event's JSON without any member whose key names a
// secret (b24event.IsSecretKey: *token, *secret*, *password*, AUTH_ID,
// REFRESH_ID, APP_SID), at any depth. The module redacts too, but the
// ingress is where the platform's promise "no secret reaches the stream"
// is kept, whatever version of the module (or anything else holding an
// installation's secret) sent the event. An event without such a key is
// returned as it was signed; one with is re-encoded (object keys sorted).
func Redact(raw json.RawMessage) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // ids and amounts keep their literal text
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("onprem: trailing data after the event's JSON")
	}
	if !strip(v) {
		return raw, nil
	}
	return json.Marshal(v)
}

// strip deletes secret members from v in place and reports whether it
// deleted any.
func strip(v any) bool {
	changed := false
	switch t := v.(type) {
	case map[string]any:
		for k, child := range t {
			if b24event.IsSecretKey(k) {
				delete(t, k)
				changed = true
				continue
			}
			changed = strip(child) || changed
		}
	case []any:
		for _, child := range t {
			changed = strip(child) || changed
		}
	}
	return changed
}
