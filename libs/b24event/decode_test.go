package b24event

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

// m is shorthand for a tree literal.
type m = map[string]any

func TestDecodeForm(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields []Field
		tree   m
	}{
		{
			name:   "real capture shape",
			body:   "event=ONCRMCONTACTADD&event_handler_id=58&data%5BFIELDS%5D%5BID%5D=134806&ts=1727018926&auth%5Bscope%5D=crm%2Cplacement%2Cuser_brief",
			fields: []Field{{"event", "ONCRMCONTACTADD"}, {"event_handler_id", "58"}, {"data[FIELDS][ID]", "134806"}, {"ts", "1727018926"}, {"auth[scope]", "crm,placement,user_brief"}},
			tree:   m{"event": "ONCRMCONTACTADD", "event_handler_id": "58", "data": m{"FIELDS": m{"ID": "134806"}}, "ts": "1727018926", "auth": m{"scope": "crm,placement,user_brief"}},
		},
		{
			name: "literal brackets are the same key",
			body: "data[FIELDS][ID]=1",
			tree: m{"data": m{"FIELDS": m{"ID": "1"}}},
		},
		{
			name: "numeric keys stay map keys",
			body: "data[BOT][567][BOT_ID]=567&data[PARAMS][MENTIONED_LIST][567]=567&a[0]=x&a[1]=y",
			tree: m{"data": m{"BOT": m{"567": m{"BOT_ID": "567"}}, "PARAMS": m{"MENTIONED_LIST": m{"567": "567"}}}, "a": m{"0": "x", "1": "y"}},
		},
		{
			name: "undefined stays a string",
			body: "data[FIELDS_BEFORE]=undefined&data[FIELDS_AFTER][ID]=123",
			tree: m{"data": m{"FIELDS_BEFORE": "undefined", "FIELDS_AFTER": m{"ID": "123"}}},
		},
		{
			name: "append with []",
			body: "a[]=x&a[]=y&a[]=z",
			tree: m{"a": m{"0": "x", "1": "y", "2": "z"}},
		},
		{
			name: "append continues after the largest integer key",
			body: "a[5]=x&a[]=y&a[foo]=z&a[]=w&a[2]=v&a[]=u",
			tree: m{"a": m{"5": "x", "6": "y", "foo": "z", "7": "w", "2": "v", "8": "u"}},
		},
		{
			name: "explicit key after appends moves the next index",
			body: "a[]=x&a[10]=y&a[]=z",
			tree: m{"a": m{"0": "x", "10": "y", "11": "z"}},
		},
		{
			name: "non-canonical numbers are string keys",
			body: "a[05]=x&a[-0]=y&a[%2B1]=z&a[]=w",
			tree: m{"a": m{"05": "x", "-0": "y", "+1": "z", "0": "w"}},
		},
		{
			name: "negative keys count (PHP 8.3)",
			body: "a[-5]=x&a[]=y",
			tree: m{"a": m{"-5": "x", "-4": "y"}},
		},
		{
			name: "append creates nested arrays",
			body: "a[][x]=1&a[][x]=2&b[c][]=3&b[c][]=4",
			tree: m{"a": m{"0": m{"x": "1"}, "1": m{"x": "2"}}, "b": m{"c": m{"0": "3", "1": "4"}}},
		},
		{
			name:   "append to a full array is dropped, like PHP",
			body:   "a[9223372036854775806]=1&a[]=2&a[]=3&b[9223372036854775807]=4&b[]=5&b[x]=6",
			fields: []Field{{"a[9223372036854775806]", "1"}, {"a[]", "2"}, {"a[]", "3"}, {"b[9223372036854775807]", "4"}, {"b[]", "5"}, {"b[x]", "6"}},
			tree:   m{"a": m{"9223372036854775806": "1", "9223372036854775807": "2"}, "b": m{"9223372036854775807": "4", "x": "6"}},
		},
		{
			name: "beyond int64 is a string key",
			body: "a[9223372036854775808]=1&a[]=2",
			tree: m{"a": m{"9223372036854775808": "1", "0": "2"}},
		},
		{
			name:   "repeated key: last wins, fields keep both",
			body:   "a=1&b=2&a=3",
			fields: []Field{{"a", "1"}, {"b", "2"}, {"a", "3"}},
			tree:   m{"a": "3", "b": "2"},
		},
		{
			name: "string then array: the array replaces the string",
			body: "a=1&a[b]=2",
			tree: m{"a": m{"b": "2"}},
		},
		{
			name: "array then string: the string replaces the array",
			body: "a[b]=2&a=1",
			tree: m{"a": "1"},
		},
		{
			name: "replaced array restarts its indexes",
			body: "a[]=x&a[]=y&a=s&a[]=z",
			tree: m{"a": m{"0": "z"}},
		},
		{
			name:   "empty pairs skipped, missing = is an empty value",
			body:   "&&a&b=&&c=1&",
			fields: []Field{{"a", ""}, {"b", ""}, {"c", "1"}},
			tree:   m{"a": "", "b": "", "c": "1"},
		},
		{
			name:   "plus and percent decoding in keys and values",
			body:   "a+b%5Bc+d%5D=x+y%26z%3D%25",
			fields: []Field{{"a b[c d]", "x y&z=%"}},
			tree:   m{"a b": m{"c d": "x y&z=%"}},
		},
		{
			name:   "dots and spaces are not mangled",
			body:   "a.b=1&a+b=2",
			fields: []Field{{"a.b", "1"}, {"a b", "2"}},
			tree:   m{"a.b": "1", "a b": "2"},
		},
		{
			name:   "equals in value",
			body:   "a=b=c",
			fields: []Field{{"a", "b=c"}},
			tree:   m{"a": "b=c"},
		},
		{
			name:   "empty body",
			body:   "",
			fields: []Field{},
			tree:   m{},
		},
		{
			name:   "utf-8 and raw bytes pass through",
			body:   "a=%D0%9F%D1%80%D0%B8%D0%B2%D0%B5%D1%82&b=%FF",
			fields: []Field{{"a", "Привет"}, {"b", "\xff"}},
			tree:   m{"a": "Привет", "b": "\xff"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Decode(ContentTypeForm, []byte(tt.body), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if b.ContentType != ContentTypeForm {
				t.Errorf("ContentType = %q", b.ContentType)
			}
			if tt.fields != nil && !reflect.DeepEqual(b.Fields, tt.fields) {
				t.Errorf("Fields = %q, want %q", b.Fields, tt.fields)
			}
			if !reflect.DeepEqual(b.Tree, map[string]any(tt.tree)) {
				t.Errorf("Tree = %v, want %v", b.Tree, tt.tree)
			}
		})
	}
}

func TestDecodeContentType(t *testing.T) {
	tests := []struct {
		ct   string
		want string
		err  error
	}{
		{"application/x-www-form-urlencoded", ContentTypeForm, nil},
		{"application/x-www-form-urlencoded; charset=UTF-8", ContentTypeForm, nil},
		{"  Application/X-WWW-Form-Urlencoded ;charset=utf-8", ContentTypeForm, nil},
		{"application/json", ContentTypeJSON, nil},
		{"application/json; charset=utf-8", ContentTypeJSON, nil},
		{"", "", ErrUnsupportedContentType},
		{"multipart/form-data; boundary=x", "", ErrUnsupportedContentType},
		{"text/plain", "", ErrUnsupportedContentType},
		{"application/jsonx", "", ErrUnsupportedContentType},
	}
	for _, tt := range tests {
		body := "a=1"
		if tt.want == ContentTypeJSON {
			body = `{"a":"1"}`
		}
		b, err := Decode(tt.ct, []byte(body), Limits{})
		if !errors.Is(err, tt.err) || (err == nil) != (tt.err == nil) {
			t.Errorf("Decode(%q) err = %v, want %v", tt.ct, err, tt.err)
			continue
		}
		if err == nil && b.ContentType != tt.want {
			t.Errorf("Decode(%q).ContentType = %q, want %q", tt.ct, b.ContentType, tt.want)
		}
	}
}

func TestDecodeLimits(t *testing.T) {
	small := Limits{MaxBodyBytes: 64, MaxDepth: 2, MaxKeys: 3, MaxKeyLen: 8}
	tests := []struct {
		name string
		ct   string
		body string
		lim  Limits
		err  error
	}{
		{"body at limit", ContentTypeForm, "a=" + strings.Repeat("x", 62), small, nil},
		{"body over limit", ContentTypeForm, "a=" + strings.Repeat("x", 63), small, ErrBodyTooLarge},
		{"size is checked before content type", "text/plain", strings.Repeat("a", 65), small, ErrBodyTooLarge},
		{"default body limit", ContentTypeForm, "a=" + strings.Repeat("x", 256<<10), Limits{}, ErrBodyTooLarge},
		{"keys at limit", ContentTypeForm, "a=1&b=2&c=3", small, nil},
		{"keys over limit", ContentTypeForm, "a=1&b=2&c=3&d=4", small, ErrTooManyKeys},
		{"empty pairs do not count", ContentTypeForm, "a=1&&&b=2&&c=3&", small, nil},
		{"keys over limit before decoding", ContentTypeForm, "%zz&b&c&d", small, ErrTooManyKeys},
		{"total nesting at 2×MaxKeys", ContentTypeForm, "a[][]=1&b[][]=2&c[][]=3", small, nil},
		{"total nesting over 2×MaxKeys", ContentTypeForm, "a[][]=1&b[][]=2&c[][][]=3", Limits{MaxDepth: 3, MaxKeys: 3}, ErrTooManyKeys},
		{"default total nesting", ContentTypeForm, strings.Repeat("a[][][][][][][][][][]=x&", 4096), Limits{}, ErrTooManyKeys},
		{"json total nesting", ContentTypeJSON, `{"a":[[[1]],[2],[3]]}`, Limits{MaxKeys: 3, MaxDepth: 3}, ErrTooManyKeys},
		{"default key count", ContentTypeForm, strings.Repeat("a=1&", 4097), Limits{}, ErrTooManyKeys},
		{"key at limit", ContentTypeForm, "a[b][cd]=1", small, nil},
		{"key over limit", ContentTypeForm, "a[b][cde]=1", small, ErrKeyTooLong},
		{"key length is decoded length", ContentTypeForm, "a%5Bb%5D%5Bcd%5D=1", small, nil},
		{"encoded key far over limit", ContentTypeForm, strings.Repeat("%61", 9) + "=1", small, ErrKeyTooLong},
		{"default key length", ContentTypeForm, strings.Repeat("k", 513) + "=1", Limits{}, ErrKeyTooLong},
		{"depth at limit", ContentTypeForm, "a[b][c]=1", small, nil},
		{"depth over limit", ContentTypeForm, "a[][][]=1", small, ErrTooDeep},
		{"default depth", ContentTypeForm, "a" + strings.Repeat("[x]", 11) + "=1", Limits{}, ErrTooDeep},
		{"default depth at limit", ContentTypeForm, "a" + strings.Repeat("[x]", 10) + "=1", Limits{}, nil},
		{"negative limits take defaults", ContentTypeForm, "a" + strings.Repeat("[x]", 11) + "=1", Limits{MaxDepth: -1}, ErrTooDeep},

		{"json body over limit", ContentTypeJSON, `{"a":"` + strings.Repeat("x", 60) + `"}`, small, ErrBodyTooLarge},
		{"json keys at limit", ContentTypeJSON, `{"a":1,"b":[2,3]}`, small, nil},
		{"json keys over limit", ContentTypeJSON, `{"a":1,"b":[2,3,4]}`, small, ErrTooManyKeys},
		{"json nulls and empties do not count", ContentTypeJSON, `{"a":1,"n":null,"e":{},"l":[],"b":[2,3]}`, small, nil},
		{"json key over limit", ContentTypeJSON, `{"a":{"b":{"cde":1}}}`, small, ErrKeyTooLong},
		{"json depth at limit", ContentTypeJSON, `{"a":{"b":{"c":1}}}`, small, nil},
		{"json depth over limit", ContentTypeJSON, `{"a":[[[1]]]}`, small, ErrTooDeep},
		{"json depth counts empty containers", ContentTypeJSON, `{"a":[[[]]]}`, small, ErrTooDeep},
		{"json deep nesting fails fast", ContentTypeJSON, `{"a":` + strings.Repeat("[", 50000), Limits{MaxBodyBytes: 1 << 20}, ErrTooDeep},
		{"json bracket key depth", ContentTypeJSON, `{"a[b][c][d]":1}`, Limits{MaxDepth: 2}, ErrTooDeep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.ct, []byte(tt.body), tt.lim)
			if tt.err == nil && err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("Decode err = %v, want %v", err, tt.err)
			}
			if err != nil && countSentinels(err) != 1 {
				t.Fatalf("err %v matches %d sentinels", err, countSentinels(err))
			}
		})
	}
}

var sentinels = []error{ErrBodyTooLarge, ErrTooDeep, ErrTooManyKeys, ErrKeyTooLong, ErrMalformed, ErrUnsupportedContentType}

func countSentinels(err error) int {
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	return n
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		body string
		msg  string // part of the error text
	}{
		{"truncated escape in key", ContentTypeForm, "a%5=1", "invalid percent-encoding"},
		{"bad escape in key", ContentTypeForm, "a%zz=1", "invalid percent-encoding"},
		{"bad escape in value", ContentTypeForm, "a=%G1", "invalid percent-encoding"},
		{"escape at end", ContentTypeForm, "a=%", "invalid percent-encoding"},
		{"unclosed bracket", ContentTypeForm, "a[b=1", "unbalanced bracket"},
		{"unclosed second bracket", ContentTypeForm, "a[b][c=1", "unbalanced bracket"},
		{"stray closing bracket", ContentTypeForm, "a]=1", "unbalanced bracket"},
		{"bracket inside segment", ContentTypeForm, "a[b[c]]=1", "unbalanced bracket"},
		{"text after bracket", ContentTypeForm, "a[b]c=1", "text after closing bracket"},
		{"empty name", ContentTypeForm, "[a]=1", "empty name"},
		{"empty key", ContentTypeForm, "=1", "empty name"},
		{"encoded empty name", ContentTypeForm, "%5Ba%5D=1", "empty name"},

		{"json empty", ContentTypeJSON, "", "not an object"},
		{"json top-level array", ContentTypeJSON, `[1]`, "not an object"},
		{"json top-level string", ContentTypeJSON, `"x"`, "not an object"},
		{"json trailing data", ContentTypeJSON, `{"a":1} x`, "after the top-level object"},
		{"json two objects", ContentTypeJSON, `{}{}`, "after the top-level object"},
		{"json unterminated", ContentTypeJSON, `{"a":1`, "unterminated object"},
		{"json unterminated string", ContentTypeJSON, `{"a":"x`, "unterminated string"},
		{"json missing colon", ContentTypeJSON, `{"a" 1}`, "expected ':'"},
		{"json trailing comma", ContentTypeJSON, `{"a":1,}`, "expected a string key"},
		{"json unquoted key", ContentTypeJSON, `{a:1}`, "expected a string key"},
		{"json bad literal", ContentTypeJSON, `{"a":tru}`, "invalid literal"},
		{"json bad number", ContentTypeJSON, `{"a":01}`, "expected ',' or '}'"},
		{"json bad fraction", ContentTypeJSON, `{"a":1.}`, "invalid number"},
		{"json bad exponent", ContentTypeJSON, `{"a":1e}`, "invalid number"},
		{"json lone minus", ContentTypeJSON, `{"a":-}`, "invalid number"},
		{"json control char", ContentTypeJSON, "{\"a\":\"x\ny\"}", "control character"},
		{"json bad escape", ContentTypeJSON, `{"a":"\x"}`, "invalid escape"},
		{"json bad unicode escape", ContentTypeJSON, `{"a":"\u12G4"}`, `invalid \u escape`},
		{"json array trailing comma", ContentTypeJSON, `{"a":[1,]}`, "unexpected character"},
		{"json empty top-level key", ContentTypeJSON, `{"":1}`, "empty name"},
		{"json key with stray bracket", ContentTypeJSON, `{"a":{"b]":1}}`, "text after closing bracket"},
		{"json key with open bracket", ContentTypeJSON, `{"a":{"b[":1}}`, "unbalanced bracket"},
		{"json key with text after bracket", ContentTypeJSON, `{"a[b]c":1}`, "text after closing bracket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.ct, []byte(tt.body), Limits{})
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if countSentinels(err) != 1 {
				t.Fatalf("err %v matches %d sentinels", err, countSentinels(err))
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("err = %q, want it to mention %q", err, tt.msg)
			}
		})
	}
}

// TestErrorsDoNotQuoteValues: error text ends up in logs; values may be
// secrets.
func TestErrorsDoNotQuoteValues(t *testing.T) {
	for _, body := range []string{"auth[access_token]=SECRETVALUE%zz", "a[b=SECRETVALUE", "SECRETVALUE[x=1"[:0] + "x=SECRETVALUE&[y]=1"} {
		_, err := Decode(ContentTypeForm, []byte(body), Limits{})
		if err == nil {
			t.Fatalf("%q decoded", body)
		}
		if strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("error quotes a value: %v", err)
		}
	}
	_, err := Decode(ContentTypeForm, []byte(strings.Repeat("k", 600)+"=1"), Limits{})
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("long key not clipped in error: %v", err)
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		fields []Field
		tree   m
	}{
		{
			name:   "scalars as PHP would send them",
			body:   `{"s":"x","i":123,"f":-1.5e3,"t":true,"f0":false,"n":null}`,
			fields: []Field{{"s", "x"}, {"i", "123"}, {"f", "-1.5e3"}, {"t", "1"}, {"f0", "0"}},
			tree:   m{"s": "x", "i": "123", "f": "-1.5e3", "t": "1", "f0": "0"},
		},
		{
			name:   "nesting and arrays, in document order",
			body:   `{"event":"ONX","data":{"FIELDS":{"ID":"7"},"L":["a",{"b":"c"}]},"ts":"1"}`,
			fields: []Field{{"event", "ONX"}, {"data[FIELDS][ID]", "7"}, {"data[L][0]", "a"}, {"data[L][1][b]", "c"}, {"ts", "1"}},
			tree:   m{"event": "ONX", "data": m{"FIELDS": m{"ID": "7"}, "L": m{"0": "a", "1": m{"b": "c"}}}, "ts": "1"},
		},
		{
			name:   "empty containers vanish",
			body:   `{"data":[],"x":{},"y":{"z":[]}}`,
			fields: []Field{},
			tree:   m{},
		},
		{
			name:   "duplicate keys merge like their form equivalent",
			body:   `{"a":{"x":"1"},"b":"2","a":{"y":"3"},"b":"4"}`,
			fields: []Field{{"a[x]", "1"}, {"b", "2"}, {"a[y]", "3"}, {"b", "4"}},
			tree:   m{"a": m{"x": "1", "y": "3"}, "b": "4"},
		},
		{
			name:   "escapes",
			body:   `{"a":"q\"b\\s\/n\nt\tu\u00e9\ud83d\ude00lone\ud800x\u0000"}`,
			fields: []Field{{"a", "q\"b\\s/n\nt\tué😀lone\uFFFDx\x00"}},
		},
		{
			name:   "bracket keys are kept as bracket keys",
			body:   `{"data[FIELDS][ID]":"5","a":{"":"x"}}`,
			fields: []Field{{"data[FIELDS][ID]", "5"}, {"a[]", "x"}},
			tree:   m{"data": m{"FIELDS": m{"ID": "5"}}, "a": m{"0": "x"}},
		},
		{
			name:   "whitespace everywhere",
			body:   " \r\n\t{ \"a\" : [ 1 , 2 ] , \"b\" : { } } \n",
			fields: []Field{{"a[0]", "1"}, {"a[1]", "2"}},
		},
		{
			name:   "raw non-UTF-8 passes through",
			body:   "{\"a\":\"\xff\"}",
			fields: []Field{{"a", "\xff"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Decode(ContentTypeJSON, []byte(tt.body), Limits{})
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(b.Fields, tt.fields) {
				t.Errorf("Fields = %q, want %q", b.Fields, tt.fields)
			}
			if tt.tree != nil && !reflect.DeepEqual(b.Tree, map[string]any(tt.tree)) {
				t.Errorf("Tree = %v, want %v", b.Tree, tt.tree)
			}
			// The JSON body and its form equivalent are the same body.
			fb, err := Decode(ContentTypeForm, EncodeForm(b.Fields), Limits{})
			if err != nil {
				t.Fatalf("form equivalent: %v", err)
			}
			if !reflect.DeepEqual(fb.Tree, b.Tree) {
				t.Errorf("form equivalent tree = %v, want %v", fb.Tree, b.Tree)
			}
		})
	}
}

func TestFormFromJSON(t *testing.T) {
	got, err := FormFromJSON([]byte(`{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":759}},"ts":"1","auth":{"expires_in":3600,"ok":true,"no":false,"none":null}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{"event", "ONCRMDEALUPDATE"}, {"data[FIELDS][ID]", "759"}, {"ts", "1"}, {"auth[expires_in]", "3600"}, {"auth[ok]", "1"}, {"auth[no]", "0"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FormFromJSON = %q, want %q", got, want)
	}
	// No size limits, but a depth bound so it cannot recurse without end.
	if _, err := FormFromJSON([]byte(`{"a":` + strings.Repeat(`{"a":`, 20) + `1` + strings.Repeat("}", 21))); err != nil {
		t.Errorf("depth 21: %v", err)
	}
	if _, err := FormFromJSON([]byte(`{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "}")); !errors.Is(err, ErrTooDeep) {
		t.Errorf("depth 100: err = %v, want ErrTooDeep", err)
	}
	if _, err := FormFromJSON([]byte(`[]`)); !errors.Is(err, ErrMalformed) {
		t.Errorf("array: err = %v, want ErrMalformed", err)
	}
}

func TestEncodeForm(t *testing.T) {
	got := string(EncodeForm([]Field{
		{"event", "ONCRMCONTACTADD"},
		{"data[FIELDS][ID]", "134806"},
		{"auth[scope]", "crm,placement,user_brief"},
		{"auth[server_endpoint]", "https://oauth.bitrix.info/rest/"},
		{"x", "a b~*'é"},
	}))
	// As in the real capture cited in docs/bitrix24.md §3.2.
	want := "event=ONCRMCONTACTADD&data%5BFIELDS%5D%5BID%5D=134806&auth%5Bscope%5D=crm%2Cplacement%2Cuser_brief" +
		"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&x=a+b%7E%2A%27%C3%A9"
	if got != want {
		t.Errorf("EncodeForm =\n%s\nwant\n%s", got, want)
	}
	if got := EncodeForm(nil); len(got) != 0 {
		t.Errorf("EncodeForm(nil) = %q", got)
	}
}

func TestDefaultLimits(t *testing.T) {
	want := Limits{MaxBodyBytes: 256 << 10, MaxDepth: 10, MaxKeys: 4096, MaxKeyLen: 512}
	if got := DefaultLimits(); got != want {
		t.Errorf("DefaultLimits() = %+v, want %+v", got, want)
	}
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("zero limits = %+v, want %+v", got, want)
	}
}
