package bitrix

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// MaxBatch is the most commands one batch request may carry
// (CRestUtil::BATCH_MAX_LENGTH, §4.7).
const MaxBatch = 50

// BatchCommand is one sub-command of a batch. Params are rendered as a PHP
// query string (§4.7) and may reference earlier results with
// "$result[key][FIELD]" strings; commands run in order.
type BatchCommand struct {
	// Key names the command's result; unique within the batch.
	Key string
	// Method is the REST method, e.g. "crm.deal.get".
	Method string
	// Params are encoded like http_build_query; nil for none.
	Params any
}

// Ref returns the "$result[key]…" reference to a field of an earlier
// command's result, e.g. Ref("deal", "ID") → "$result[deal][ID]". An
// unresolvable reference is sent on as literal text, so use halt when a
// later command depends on an earlier one (§4.7).
func Ref(key string, path ...string) string {
	var b strings.Builder
	b.WriteString("$result[" + key + "]")
	for _, p := range path {
		b.WriteString("[" + p + "]")
	}
	return b.String()
}

// BatchResult holds each command's outcome. A batch answers 200 even when
// commands fail (§4.7), so per-command errors are here, not in the error
// returned by Batch.
type BatchResult struct {
	// Keys lists the commands in the order they were sent.
	Keys []string
	// Results maps key to the command's raw "result".
	Results map[string]json.RawMessage
	// Errors maps key to the command's failure (Status 0, Method set).
	Errors map[string]*Error
	// Totals and Next are the list paging values per key, where present.
	Totals map[string]int
	Next   map[string]int // see Totals
	// Times are per-command timings; each counts against that method's
	// operation-time budget (§4.6).
	Times map[string]Time
}

// Skipped lists commands with neither result nor error: the ones after a
// failure when halt was set.
func (r *BatchResult) Skipped() []string {
	var out []string
	for _, k := range r.Keys {
		_, ok := r.Results[k]
		if _, bad := r.Errors[k]; !ok && !bad {
			out = append(out, k)
		}
	}
	return out
}

// Decode unmarshals one command's result into out. It returns the command's
// *Error if it failed, and a KindNotFound *Error if the result is empty.
func (r *BatchResult) Decode(key string, out any) error {
	if e := r.Errors[key]; e != nil {
		return e
	}
	raw, ok := r.Results[key]
	if !ok || emptyJSON(raw) {
		return &Error{Description: "no result for batch command " + key, kind: KindNotFound}
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &Error{Description: "decode result of " + key + ": " + err.Error(), Err: err, kind: KindPermanent}
	}
	return nil
}

// Batch sends up to MaxBatch commands as one request (one unit of the rate
// limit, §4.5). With halt, execution stops at the first failing command. The
// returned error covers the batch request itself; a batch made only of reads
// is retried like a read, any other batch is never retried after an
// ambiguous failure (a partial batch must not be resent, §4.7).
func (c *Client) Batch(ctx context.Context, halt bool, cmds ...BatchCommand) (*BatchResult, error) {
	if len(cmds) == 0 {
		return &BatchResult{}, nil
	}
	if len(cmds) > MaxBatch {
		return nil, &Error{Method: "batch", Portal: c.portal, Code: CodeBatchLength,
			Description: fmt.Sprintf("%d commands; at most %d per batch (use BatchAll)", len(cmds), MaxBatch), kind: KindPermanent}
	}
	body, idempotent, err := encodeBatch(halt, cmds)
	if err != nil {
		return nil, &Error{Method: "batch", Portal: c.portal, Description: err.Error(), Err: err, kind: KindPermanent}
	}
	resp, err := c.do(ctx, "batch", body, idempotent)
	if err != nil {
		return nil, err
	}
	res, err := decodeBatch(resp.Result, cmds)
	if err != nil {
		return nil, &Error{Status: 200, Method: "batch", Portal: c.portal, Description: err.Error(), Err: err, kind: KindPermanent}
	}
	now := c.clock.Now()
	for k, e := range res.Errors {
		e.Portal = c.portal
		if e.Kind() == KindOperationLimit {
			e.ResetAt = c.ops.block(c.portal, e.Method, res.Times[k].OperatingResetAt, now)
		}
	}
	for k, t := range res.Times {
		c.ops.observe(c.portal, methodOf(cmds, k), t)
	}
	return res, nil
}

// BatchAll runs any number of independent commands, MaxBatch per request,
// without halt, and merges the results. References between commands only
// resolve within one request, so do not use them here.
func (c *Client) BatchAll(ctx context.Context, cmds []BatchCommand) (*BatchResult, error) {
	all := &BatchResult{Results: map[string]json.RawMessage{}, Errors: map[string]*Error{},
		Totals: map[string]int{}, Next: map[string]int{}, Times: map[string]Time{}}
	for start := 0; start < len(cmds); start += MaxBatch {
		chunk := cmds[start:min(start+MaxBatch, len(cmds))]
		r, err := c.Batch(ctx, false, chunk...)
		if err != nil {
			return all, err
		}
		all.Keys = append(all.Keys, r.Keys...)
		mergeInto(all.Results, r.Results)
		mergeInto(all.Errors, r.Errors)
		mergeInto(all.Totals, r.Totals)
		mergeInto(all.Next, r.Next)
		mergeInto(all.Times, r.Times)
	}
	return all, nil
}

// GetMany fetches one entity per id with method (e.g. "crm.deal.get") in
// batches of MaxBatch: 1,000 IDs cost 20 requests instead of 1,000 (§9.2).
// params builds each command's parameters, e.g.
// func(id ID) any { return map[string]any{"id": id} }.
func (c *Client) GetMany(ctx context.Context, method string, ids []ID, params func(ID) any) (*BatchResult, error) {
	cmds := make([]BatchCommand, 0, len(ids))
	seen := make(map[ID]bool, len(ids))
	for _, id := range ids {
		if seen[id] {
			continue
		}
		seen[id] = true
		cmds = append(cmds, BatchCommand{Key: "id" + id.String(), Method: method, Params: params(id)})
	}
	return c.BatchAll(ctx, cmds)
}

// ManyKey is the BatchResult key GetMany uses for id.
func ManyKey(id ID) string { return "id" + id.String() }

func mergeInto[V any](dst, src map[string]V) {
	for k, v := range src {
		dst[k] = v
	}
}

func methodOf(cmds []BatchCommand, key string) string {
	for _, c := range cmds {
		if c.Key == key {
			return c.Method
		}
	}
	return ""
}

func encodeBatch(halt bool, cmds []BatchCommand) ([]byte, bool, error) {
	var b bytes.Buffer
	h := 0
	if halt {
		h = 1
	}
	fmt.Fprintf(&b, `{"halt":%d,"cmd":{`, h)
	seen := map[string]bool{}
	allReads := true
	for i, cmd := range cmds {
		if cmd.Key == "" || seen[cmd.Key] {
			return nil, false, fmt.Errorf("batch command %d: key %q is empty or repeated", i, cmd.Key)
		}
		seen[cmd.Key] = true
		if strings.EqualFold(cmd.Method, "batch") {
			return nil, false, fmt.Errorf("batch command %q: batch cannot be nested (§4.7)", cmd.Key)
		}
		allReads = allReads && isRead(cmd.Method)
		q, err := encodeQuery(cmd.Params)
		if err != nil {
			return nil, false, fmt.Errorf("batch command %q: %w", cmd.Key, err)
		}
		line := cmd.Method
		if q != "" {
			line += "?" + q
		}
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(cmd.Key)
		v, _ := json.Marshal(line)
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}}")
	return b.Bytes(), allReads, nil
}

func decodeBatch(raw json.RawMessage, cmds []BatchCommand) (*BatchResult, error) {
	var env struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"result_error"`
		Total  json.RawMessage `json:"result_total"`
		Next   json.RawMessage `json:"result_next"`
		Time   json.RawMessage `json:"result_time"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("decode batch result: %w", err)
	}
	keys := make([]string, len(cmds))
	for i, c := range cmds {
		keys[i] = c.Key
	}
	r := &BatchResult{Keys: keys, Errors: map[string]*Error{}, Totals: map[string]int{}, Next: map[string]int{}, Times: map[string]Time{}}
	var err error
	if r.Results, err = keyed(env.Result, keys); err != nil {
		return nil, err
	}
	errs, err := keyed(env.Error, keys)
	if err != nil {
		return nil, err
	}
	for k, v := range errs {
		var ev struct {
			Error            json.RawMessage `json:"error"`
			ErrorDescription string          `json:"error_description"`
		}
		_ = json.Unmarshal(v, &ev)
		code, desc := errorFields(ev.Error)
		if ev.ErrorDescription != "" {
			desc = ev.ErrorDescription
		}
		r.Errors[k] = &Error{Code: code, Description: desc, Method: methodOf(cmds, k)}
	}
	for _, p := range []struct {
		raw json.RawMessage
		dst map[string]int
	}{{env.Total, r.Totals}, {env.Next, r.Next}} {
		m, err := keyed(p.raw, keys)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			var n flexInt
			if json.Unmarshal(v, &n) == nil {
				p.dst[k] = int(n)
			}
		}
	}
	times, err := keyed(env.Time, keys)
	if err != nil {
		return nil, err
	}
	for k, v := range times {
		var t Time
		if json.Unmarshal(v, &t) == nil {
			r.Times[k] = t
		}
	}
	return r, nil
}

// keyed reads a per-command map. PHP encodes an empty one as [] and one whose
// keys are 0..n-1 as a JSON array, so both shapes are accepted.
func keyed(raw json.RawMessage, keys []string) (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return out, nil
	}
	if raw[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(raw, &arr); err != nil {
			return nil, fmt.Errorf("decode batch result: %w", err)
		}
		for i, v := range arr {
			out[strconv.Itoa(i)] = v
		}
		return out, nil
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("decode batch result: %w", err)
	}
	_ = keys
	return out, nil
}
