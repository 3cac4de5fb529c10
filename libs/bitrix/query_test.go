package bitrix

import (
	"testing"
)

func TestEncodeQuery(t *testing.T) {
	type order struct {
		ID string `json:"ID"`
	}
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"nil", nil, ""},
		{"flat", map[string]any{"id": 5}, "id=5"},
		{"nested and ordered struct", struct {
			Filter map[string]any `json:"filter"`
			Order  order          `json:"order"`
			Select []string       `json:"select"`
		}{map[string]any{">ID": 10}, order{"ASC"}, []string{"ID", "UF_*"}},
			"filter%5B%3EID%5D=10&order%5BID%5D=ASC&select%5B0%5D=ID&select%5B1%5D=UF_%2A"},
		{"bool and null", map[string]any{"a": true, "b": false, "c": nil}, "a=1&b=0"},
		{"reference survives", map[string]any{"id": Ref("deal", "ID")}, "id=%24result%5Bdeal%5D%5BID%5D"},
	}
	for _, tt := range tests {
		got, err := encodeQuery(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func TestWithAuth(t *testing.T) {
	tests := []struct{ body, want string }{
		{`{}`, `{"auth":"t"}`},
		{`{"a":1}`, `{"auth":"t","a":1}`},
		{` { "cmd" : {"b":"x","a":"y"} } `, `{"auth":"t","cmd" : {"b":"x","a":"y"}}`},
	}
	for _, tt := range tests {
		if got := string(withAuth([]byte(tt.body), "t")); got != tt.want {
			t.Errorf("%s: got %s", tt.body, got)
		}
	}
}
