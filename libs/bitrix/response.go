package bitrix

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Time is the "time" block of every answer (§4.3). OperatingResetAt and
// Operating drive the per-method operation-time limit (§4.6).
type Time struct {
	// Start and Finish are unix seconds, fractional; Duration and
	// Processing are seconds; DateStart and DateFinish the same instants as
	// ISO-8601 strings.
	Start            float64
	Finish           float64   // see Start
	Duration         float64   // see Start
	Processing       float64   // see Start
	DateStart        string    // see Start
	DateFinish       string    // see Start
	OperatingResetAt time.Time // zero when absent
	Operating        float64   // seconds of execution time this method has used
}

// UnmarshalJSON tolerates numbers sent as strings and missing fields.
func (t *Time) UnmarshalJSON(b []byte) error {
	var raw struct {
		Start            flexFloat `json:"start"`
		Finish           flexFloat `json:"finish"`
		Duration         flexFloat `json:"duration"`
		Processing       flexFloat `json:"processing"`
		DateStart        string    `json:"date_start"`
		DateFinish       string    `json:"date_finish"`
		OperatingResetAt flexFloat `json:"operating_reset_at"`
		Operating        flexFloat `json:"operating"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*t = Time{
		Start: float64(raw.Start), Finish: float64(raw.Finish), Duration: float64(raw.Duration),
		Processing: float64(raw.Processing), DateStart: raw.DateStart, DateFinish: raw.DateFinish,
		Operating: float64(raw.Operating),
	}
	if raw.OperatingResetAt > 0 {
		t.OperatingResetAt = time.Unix(int64(raw.OperatingResetAt), 0)
	}
	return nil
}

// Response is a decoded successful answer.
type Response struct {
	// Result is the raw "result" value. For a get of something missing it
	// may be [] (§5.3); typed helpers turn that into KindNotFound.
	Result json.RawMessage
	// Total is "total" for list methods (0 when start=-1, §4.8).
	Total int
	// Next is the "start" of the next page; HasNext is false on the last one.
	Next    int
	HasNext bool // see Next
	// Time is the timing block.
	Time Time
}

// IsEmptyResult reports whether the result is absent, null, false, [] or {}:
// Bitrix24's ways of saying "nothing here".
func (r *Response) IsEmptyResult() bool { return emptyJSON(r.Result) }

func emptyJSON(b json.RawMessage) bool {
	switch string(bytes.TrimSpace(b)) {
	case "", "null", "false", "[]", "{}":
		return true
	}
	return false
}

type envelope struct {
	Result           json.RawMessage `json:"result"`
	Total            *flexInt        `json:"total"`
	Next             *flexInt        `json:"next"`
	Time             *Time           `json:"time"`
	Error            json.RawMessage `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// decodeResponse turns one HTTP answer into a Response or an *Error. It never
// fails on odd JSON: anything that is not a JSON object (an HTML error page
// under load, §4.4) becomes an *Error carrying the status and a text snippet.
func decodeResponse(method string, status int, body []byte) (*Response, *Error) {
	trimmed := bytes.TrimSpace(body)
	var env envelope
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &env) != nil {
		e := &Error{Status: status, Method: method, Description: "unexpected non-JSON answer: " + snippet(trimmed)}
		switch {
		case status >= 500, status < 300, status == 429:
			e.kind = KindTransient
		case status == 401, status == 403:
			e.kind = KindAuth
		default:
			e.kind = KindPermanent
		}
		return nil, e
	}
	code, desc := errorFields(env.Error)
	if env.ErrorDescription != "" {
		desc = env.ErrorDescription
	}
	if code != "" || desc != "" || status >= 400 {
		e := &Error{Status: status, Code: code, Description: desc, Method: method}
		if env.Time != nil && !env.Time.OperatingResetAt.IsZero() {
			e.ResetAt = env.Time.OperatingResetAt
		}
		if code == "" && desc == "" {
			e.Description = "HTTP " + fmt.Sprint(status) + " without an error body"
		}
		return nil, e
	}
	r := &Response{Result: env.Result}
	if env.Total != nil {
		r.Total = int(*env.Total)
	}
	if env.Next != nil {
		r.Next, r.HasNext = int(*env.Next), true
	}
	if env.Time != nil {
		r.Time = *env.Time
	}
	return r, nil
}

// errorFields reads "error" as a string (REST 1/2) or as an object
// {"code","message"} (REST 3, §4.1).
func errorFields(raw json.RawMessage) (code, desc string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), "" // tasks answers "error":100 in some versions (§4.4)
	}
	var obj struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Code, obj.Message
	}
	return string(raw), ""
}

func snippet(b []byte) string {
	s := tagRE.ReplaceAllString(string(b), " ")
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		s = "(empty body)"
	}
	return s
}
