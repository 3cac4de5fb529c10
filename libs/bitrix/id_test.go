package bitrix

import (
	"encoding/json"
	"testing"
)

func TestIDUnmarshal(t *testing.T) {
	tests := []struct {
		in      string
		want    ID
		wantErr bool
	}{
		{`123`, 123, false}, {`"123"`, 123, false}, {`""`, 0, false}, {`null`, 0, false},
		{`" 7 "`, 7, false}, {`12.0`, 12, false}, {`"abc"`, 0, true}, {`1.5`, 0, true}, {`false`, 0, false},
	}
	for _, tt := range tests {
		var id ID
		err := json.Unmarshal([]byte(tt.in), &id)
		if (err != nil) != tt.wantErr || id != tt.want {
			t.Errorf("%s: got %v, %v; want %v, err=%v", tt.in, id, err, tt.want, tt.wantErr)
		}
	}
}

func TestBoolUnmarshal(t *testing.T) {
	for in, want := range map[string]Bool{`"Y"`: true, `"N"`: false, `true`: true, `0`: false, `"1"`: true, `null`: false, `""`: false} {
		var b Bool
		if err := json.Unmarshal([]byte(in), &b); err != nil || b != want {
			t.Errorf("%s: got %v, %v", in, b, err)
		}
	}
}
