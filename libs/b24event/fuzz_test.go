package b24event

// FuzzDecode run log (update when re-run), go1.26.8 linux/amd64 on a shared
// 2-core machine, `go test -run='^$' -fuzz=FuzzDecode -fuzztime=4m
// -parallel=N`:
//
//   - 4m0s, 8,062,305 execs, N=1: no failure. Changed after it: appends to
//     a full array are dropped (PHP) instead of failing, the raw key-length
//     pre-check.
//   - 4m0s, 2,969,876 execs, N=1 (machine heavily loaded): no failure.
//     Changed after it: the total-nesting bound (2×MaxKeys).
//   - 4m0s, 6,343,602 execs, N=2, on the committed code: no failure; 596
//     corpus entries.
//   - 2m0s, 1,156,009 execs, N=1, after decodeForm stopped copying its
//     buffer into a string (unsafe.String) and Redacted became
//     AppendRedacted: no failure.
//
// The invariants were checked for teeth by planting a bug in the JSON
// re-nesting of Redacted (found in 14s; that input is kept as
// json-conflicting-empty-keys). A selection of the generated corpus, one
// per distinct outcome, is kept under testdata/fuzz/FuzzDecode.
//
// Reproduce: go test -run='^$' -fuzz=FuzzDecode -fuzztime=3m
// Interesting inputs found are kept in testdata/fuzz/FuzzDecode and run as
// regression tests by every plain `go test`.

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// fuzzLimits are smaller than the defaults so the fuzzer actually reaches
// every limit.
var fuzzLimits = Limits{MaxBodyBytes: 16 << 10, MaxDepth: 4, MaxKeys: 128, MaxKeyLen: 64}

func FuzzDecode(f *testing.F) {
	for _, fx := range loadFixtures(f) {
		f.Add(false, EncodeForm(fx.fields))
		if fx.kind == "json" {
			f.Add(true, fx.json)
		}
	}
	for _, s := range []string{
		"a[]=1&a[]=2&a[5]=x&a[]=y&a[-3]=z",
		"a=1&a[b]=2&a[b][c]=3&a=4",
		"a[9223372036854775807]=1&a[]=2",
		"data[BOT][567][AUTH][access_token]=s&data[BOT][567][BOT_ID]=567&data[x][TOKEN]=t",
		"data[7][token]=s&data[]=a&data[7]=b&event=ONX&auth[member_id]=m",
		"event=onCrmDealUpdate&auth%5Bmember_id%5D=m&data%5BFIELDS%5D%5BID%5D=1&ts=1",
		"a%zz=1&b[=2&]=3&[x]=4",
		"data=undefined&event=ONTASKADD&auth[member_id]=m",
		"a[][token]=s&a[][9223372036854775807]=x&a[0][]=y",
	} {
		f.Add(false, []byte(s))
	}
	for _, s := range []string{
		`{"a":[1,{"b":true},null,[],{}],"c":"\u00e9\ud83d\ude00\ud800"}`,
		`{"a[b]":"1","a":{"":"2"},"event":"ONX","auth":{"member_id":"m","access_token":"t"}}`,
		`{"a":1}{"b":2}`,
		`{"a":-0.5e+10,"b":01}`,
	} {
		f.Add(true, []byte(s))
	}

	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		ct := ContentTypeForm
		if isJSON {
			ct = ContentTypeJSON
		}
		b, err := Decode(ct, body, fuzzLimits)
		if err != nil {
			if n := countSentinels(err); n != 1 || errors.Is(err, ErrUnsupportedContentType) {
				t.Fatalf("error %v matches %d sentinels", err, n)
			}
			if isJSON && errors.Is(err, ErrMalformed) && json.Valid(body) &&
				!strings.Contains(err.Error(), "not an object") && !strings.Contains(err.Error(), "key ") {
				t.Fatalf("valid JSON rejected: %v", err)
			}
			return
		}
		if isJSON && !json.Valid(body) {
			t.Fatalf("invalid JSON accepted: %q", body)
		}
		checkLimits(t, b, fuzzLimits)
		checkTree(t, b.Tree, 0)

		// Redacted re-decodes (it may be longer than the input: canonical
		// escaping, arrays as objects) to exactly RedactedTree().
		red := b.Redacted()
		relaxed := fuzzLimits
		relaxed.MaxBodyBytes = 1 << 30
		rb, err := Decode(ct, red, relaxed)
		if err != nil {
			t.Fatalf("Redacted() does not decode: %v\n%q", err, red)
		}
		var kept []Field
		for _, f := range b.Fields {
			if !IsSecretKey(f.Key) {
				kept = append(kept, f)
			}
		}
		if !reflect.DeepEqual(nonNil(rb.Fields), nonNil(kept)) {
			t.Fatalf("Redacted() pairs = %q, want %q", rb.Fields, kept)
		}
		rt := b.RedactedTree()
		if !reflect.DeepEqual(rb.Tree, rt) {
			t.Fatalf("decoded Redacted() = %v, RedactedTree() = %v", rb.Tree, rt)
		}
		for _, s := range treeKeys(rt, nil) {
			if IsSecretKey(s) {
				t.Fatalf("secret key %q in RedactedTree()", s)
			}
		}

		ev, err := b.Event()
		if err != nil {
			if countSentinels(err) != 1 || !errors.Is(err, ErrMalformed) {
				t.Fatalf("Event() error %v", err)
			}
			return
		}
		if !isMemberID(ev.MemberID) || ev.MemberID == "" {
			t.Fatalf("bad member id %q", ev.MemberID)
		}
		if _, ok := eventName(ev.Name); !ok || strings.ToUpper(ev.Name) != ev.Name {
			t.Fatalf("bad event name %q", ev.Name)
		}
		for _, s := range treeKeys(ev.Data, nil) {
			if IsSecretKey(s) {
				t.Fatalf("secret key %q in Event.Data", s)
			}
		}
		id := MessageID(ev)
		if len(id) != 32 {
			t.Fatalf("MessageID = %q", id)
		}
		_, _ = ev.TaskComment()
		// What consumers decode from the stream gives the same event and id.
		rev, err := rb.Event()
		if err != nil {
			t.Fatalf("Event() fails after redaction: %v", err)
		}
		if MessageID(rev) != id || rev.Name != ev.Name || rev.MemberID != ev.MemberID ||
			rev.EntityID != ev.EntityID || !reflect.DeepEqual(rev.Data, ev.Data) {
			t.Fatalf("event changed by redaction:\n raw %+v\n red %+v", ev, rev)
		}
	})
}

// checkLimits asserts that a successful decode respects lim.
func checkLimits(t *testing.T, b *Body, lim Limits) {
	t.Helper()
	depthSum := 0
	if len(b.Fields) > lim.MaxKeys {
		t.Fatalf("%d fields > MaxKeys %d", len(b.Fields), lim.MaxKeys)
	}
	for _, f := range b.Fields {
		if len(f.Key) > lim.MaxKeyLen {
			t.Fatalf("key %q longer than %d", f.Key, lim.MaxKeyLen)
		}
		d, err := checkKey(f.Key, lim.MaxDepth)
		if err != nil {
			t.Fatalf("accepted key fails checkKey: %v", err)
		}
		depthSum += d
	}
	if depthSum > 2*lim.MaxKeys {
		t.Fatalf("total nesting %d > 2×MaxKeys", depthSum)
	}
}

// checkTree asserts the documented tree shape: string or map values only,
// no leftover internal keys, depth within bounds.
func checkTree(t *testing.T, m map[string]any, depth int) {
	t.Helper()
	if depth > fuzzLimits.MaxDepth {
		t.Fatalf("tree deeper than MaxDepth")
	}
	if m == nil {
		t.Fatalf("nil map in tree")
	}
	for k, v := range m {
		if k == nextIndexKey {
			t.Fatalf("internal key left in tree")
		}
		switch v := v.(type) {
		case string:
		case map[string]any:
			if len(v) == 0 {
				t.Fatalf("empty map under %q", k)
			}
			checkTree(t, v, depth+1)
		default:
			t.Fatalf("value of type %T under %q", v, k)
		}
	}
}

func treeKeys(m map[string]any, out []string) []string {
	for k, v := range m {
		out = append(out, k)
		if sub, ok := v.(map[string]any); ok {
			out = treeKeys(sub, out)
		}
	}
	return out
}
