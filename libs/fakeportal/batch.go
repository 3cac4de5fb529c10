package fakeportal

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/b24hub/b24hub/libs/b24event"
)

// maxBatch is CRestUtil::BATCH_MAX_LENGTH (§4.7).
const maxBatch = 50

// batch runs cmd sub-calls in key order with the caller's auth. The batch
// counts once against the bucket (the caller already admitted it) but every
// sub-call counts against its method's operation time (§4.6). It answers 200
// even when commands fail; failures are in result_error (§4.7). Caller holds
// p.mu.
func (p *Portal) batch(c *call, rawJSON []byte, form []b24event.Field) (any, *apiError) {
	cmd, _ := c.params.obj("cmd")
	keys, err := batchKeys(cmd, rawJSON, form)
	if err != nil {
		return nil, errf(400, "INVALID_REQUEST", "cannot read cmd: %v", err)
	}
	if len(keys) > maxBatch {
		return nil, errf(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
	}
	halt := c.params.flag("halt", false)
	res, errs, totals, next, times := &omap{}, &omap{}, &omap{}, &omap{}, &omap{}
	results := map[string]any{}
	p.stats.Batches++
	for _, k := range keys {
		line := scalar(cmd[k])
		method, query, _ := strings.Cut(line, "?")
		method = strings.ToLower(strings.TrimSuffix(method, ".json"))
		p.stats.BatchCommands++
		p.methods[method]++
		if method == "batch" {
			errs.set(k, map[string]string{"error": "ERROR_BATCH_METHOD_NOT_ALLOWED", "error_description": "Batch call is not allowed in batch"})
			if halt {
				break
			}
			continue
		}
		prm, perr := parseForm(query)
		if perr != nil {
			errs.set(k, map[string]string{"error": "INVALID_REQUEST", "error_description": perr.Error()})
			if halt {
				break
			}
			continue
		}
		sub := &call{method: method, params: substitute(prm, results).(map[string]any), who: c.who, now: c.now}
		sub.connector = sub.params.str("auth_connector")
		out, pg, resetAt, used, aerr := p.execute(sub)
		c.fire = append(c.fire, sub.fire...)
		times.set(k, timeBlock(c.now, resetAt, used))
		if aerr != nil {
			errs.set(k, map[string]string{"error": aerr.code, "error_description": aerr.desc})
			if halt {
				break
			}
			continue
		}
		results[k] = out
		res.set(k, out)
		if pg != nil && !pg.noCount {
			totals.set(k, pg.total)
			if pg.hasNext {
				next.set(k, pg.next)
			}
		}
	}
	return map[string]any{"result": res, "result_error": errs, "result_total": totals, "result_next": next, "result_time": times}, nil
}

// batchKeys returns the command keys in request order: from the JSON
// document, or from the raw form pairs (the parsed tree is a Go map).
func batchKeys(cmd params, rawJSON []byte, form []b24event.Field) ([]string, error) {
	if rawJSON != nil {
		var top map[string]json.RawMessage
		if err := json.Unmarshal(rawJSON, &top); err != nil {
			return nil, err
		}
		for k, v := range top {
			if strings.EqualFold(k, "cmd") {
				if bytes.HasPrefix(bytes.TrimSpace(v), []byte("[")) {
					return sortedKeys(cmd), nil
				}
				return orderedKeys(v)
			}
		}
		return nil, nil
	}
	if form != nil {
		var keys []string
		seen := map[string]bool{}
		for _, f := range form {
			rest, ok := strings.CutPrefix(f.Key, "cmd[")
			if !ok {
				continue
			}
			k, _, _ := strings.Cut(rest, "]")
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
		return keys, nil
	}
	return sortedKeys(cmd), nil
}

// sortedKeys orders numeric keys numerically, then the rest lexically.
func sortedKeys(m params) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, ea := strconv.Atoi(keys[i])
		b, eb := strconv.Atoi(keys[j])
		switch {
		case ea == nil && eb == nil:
			return a < b
		case ea == nil:
			return true
		case eb == nil:
			return false
		}
		return keys[i] < keys[j]
	})
	return keys
}

var refRE = regexp.MustCompile(`\$result\[([^\]]+)\]((?:\[[^\]]*\])*)`)

// substitute resolves $result[key][field]… references in string values
// (§4.7). A value that is exactly one reference takes the referenced value
// whatever its type; inside a longer string only scalars are substituted,
// and an unresolvable reference stays as literal text.
func substitute(v any, results map[string]any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			t[k] = substitute(x, results)
		}
		return t
	case params:
		return substitute(map[string]any(t), results)
	case []any:
		for i, x := range t {
			t[i] = substitute(x, results)
		}
		return t
	case string:
		if !strings.Contains(t, "$result[") {
			return t
		}
		if m := refRE.FindStringSubmatchIndex(t); m != nil && m[0] == 0 && m[1] == len(t) {
			if r, ok := resolveRef(t, results); ok {
				return r
			}
			return t
		}
		return refRE.ReplaceAllStringFunc(t, func(ref string) string {
			r, ok := resolveRef(ref, results)
			if !ok {
				return ref
			}
			switch r.(type) {
			case map[string]any, []any, []string:
				return ref
			}
			return scalar(r)
		})
	}
	return v
}

func resolveRef(ref string, results map[string]any) (any, bool) {
	m := refRE.FindStringSubmatch(ref)
	if m == nil {
		return nil, false
	}
	cur, ok := results[m[1]]
	if !ok {
		return nil, false
	}
	for _, seg := range strings.Split(strings.Trim(m[2], "[]"), "][") {
		if seg == "" {
			continue
		}
		switch t := cur.(type) {
		case map[string]any:
			if cur, ok = t[seg]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		case []string:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(t) {
				return nil, false
			}
			cur = t[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// omap is an insertion-ordered map that marshals like a PHP array: [] when
// empty, a JSON array when its keys are 0..n-1, an object otherwise.
type omap struct {
	keys []string
	vals map[string]any
}

func (m *omap) set(k string, v any) {
	if m.vals == nil {
		m.vals = map[string]any{}
	}
	if _, ok := m.vals[k]; !ok {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// MarshalJSON implements json.Marshaler.
func (m *omap) MarshalJSON() ([]byte, error) {
	if len(m.keys) == 0 {
		return []byte("[]"), nil
	}
	list := true
	for i, k := range m.keys {
		if k != strconv.Itoa(i) {
			list = false
			break
		}
	}
	var b bytes.Buffer
	if list {
		b.WriteByte('[')
	} else {
		b.WriteByte('{')
	}
	for i, k := range m.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if !list {
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteByte(':')
		}
		vb, err := json.Marshal(m.vals[k])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	if list {
		b.WriteByte(']')
	} else {
		b.WriteByte('}')
	}
	return b.Bytes(), nil
}
