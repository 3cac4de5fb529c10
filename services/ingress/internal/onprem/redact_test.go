package onprem

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in string
		want     string // "" = unchanged
	}{
		{"nothing secret", `{"id":"e1","params":{"fields":{"ID":42,"TITLE":"Deal"}}}`, ""},
		{"nested secrets", `{"id":"e1","params":{"fields":{"ID":42,"UF_PASSWORD":"p","x":[{"access_token":"t","keep":1}]},"AUTH_ID":"a"}}`,
			`{"id":"e1","params":{"fields":{"ID":42,"x":[{"keep":1}]}}}`},
		{"numbers keep their text", `{"params":{"OPPORTUNITY":1234567890123456789.50,"client_secret":"s"}}`,
			`{"params":{"OPPORTUNITY":1234567890123456789.50}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Redact(json.RawMessage(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == "" {
				want = tt.in
			}
			if string(got) != want {
				t.Fatalf("Redact = %s, want %s", got, want)
			}
		})
	}
	if _, err := Redact(json.RawMessage(`{"a":`)); err == nil {
		t.Fatal("truncated JSON accepted")
	}
}

// FuzzRedact: whatever JSON comes in, no secret-named key comes out.
func FuzzRedact(f *testing.F) {
	f.Add(`{"params":{"REFRESH_ID":"x","a":[{"Token":"y"}]}}`)
	f.Add(`[1,{"password":{"b":2}}]`)
	f.Fuzz(func(t *testing.T, in string) {
		out, err := Redact(json.RawMessage(in))
		if err != nil {
			return
		}
		var v any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("Redact produced invalid JSON %q from %q", out, in)
		}
		var walk func(any)
		walk = func(v any) {
			switch t2 := v.(type) {
			case map[string]any:
				for k, c := range t2 {
					if strings.EqualFold(k, "AUTH_ID") || strings.HasSuffix(strings.ToLower(k), "token") {
						t.Fatalf("secret key %q survived in %s", k, out)
					}
					walk(c)
				}
			case []any:
				for _, c := range t2 {
					walk(c)
				}
			}
		}
		walk(v)
	})
}
