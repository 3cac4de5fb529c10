package fakeportal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/b24hub/b24hub/libs/b24event"
)

// params are a call's parameters: a JSON object, or a PHP form tree (string
// leaves, numeric keys as map keys). Keys are matched case-insensitively, as
// the portal does for most methods (§1.2).
type params map[string]any

// formLimits are generous: these are REST requests from tests, not
// untrusted pushes.
var formLimits = b24event.Limits{MaxBodyBytes: 8 << 20, MaxKeys: 1 << 16, MaxDepth: 16}

// parseForm parses a PHP query string the way parse_str does, with the
// ingress's own decoder.
func parseForm(s string) (params, error) {
	if s == "" {
		return params{}, nil
	}
	body, err := b24event.Decode(b24event.ContentTypeForm, []byte(s), formLimits)
	if err != nil {
		return nil, err
	}
	return params(body.Tree), nil
}

// parseJSON decodes a JSON object body.
func parseJSON(b []byte) (params, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return params{}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var p map[string]any
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if p == nil {
		p = map[string]any{}
	}
	return params(p), nil
}

func (p params) get(key string) (any, bool) {
	if v, ok := p[key]; ok {
		return v, true
	}
	for k, v := range p {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// str returns a scalar parameter as a string.
func (p params) str(key string) string {
	v, _ := p.get(key)
	return scalar(v)
}

func scalar(v any) string {
	switch t := v.(type) {
	case string:
		return t
	case json.Number:
		return t.String()
	case bool:
		if t {
			return "1"
		}
		return "0"
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	}
	return ""
}

// int64 returns a numeric parameter, or ok=false.
func (p params) int64(key string) (int64, bool) {
	s := strings.TrimSpace(p.str(key))
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil {
			return 0, false
		}
		n = int64(f)
	}
	return n, true
}

// flag reads 1/0, Y/N, true/false; def when absent.
func (p params) flag(key string, def bool) bool {
	v, ok := p.get(key)
	if !ok {
		return def
	}
	switch strings.ToUpper(scalar(v)) {
	case "1", "Y", "TRUE":
		return true
	case "0", "N", "FALSE", "":
		return false
	}
	return def
}

// obj returns a nested object parameter.
func (p params) obj(key string) (params, bool) {
	v, ok := p.get(key)
	if !ok {
		return nil, false
	}
	m, ok := v.(map[string]any)
	return params(m), ok
}

// list returns an array parameter: a JSON array, a PHP map with numeric keys
// in key order, or a single scalar.
func (p params) list(key string) []any {
	v, ok := p.get(key)
	if !ok {
		return nil
	}
	return asList(v)
}

func asList(v any) []any {
	switch t := v.(type) {
	case []any:
		return t
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, ea := strconv.Atoi(keys[i])
			b, eb := strconv.Atoi(keys[j])
			if ea == nil && eb == nil {
				return a < b
			}
			return keys[i] < keys[j]
		})
		out := make([]any, len(keys))
		for i, k := range keys {
			out[i] = t[k]
		}
		return out
	case nil:
		return nil
	}
	return []any{v}
}

func strList(v []any) []string {
	out := make([]string, 0, len(v))
	for _, x := range v {
		out = append(out, scalar(x))
	}
	return out
}

// orderedKeys returns the keys of a JSON object in document order (batch
// commands run in key order, §4.7).
func orderedKeys(raw []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("not an object")
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, err
		}
	}
	return keys, nil
}
