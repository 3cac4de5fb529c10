package change

import (
	"bytes"
	"encoding/json"
	"testing"
)

// slowCanonical is Canonical without the as-is shortcut.
func slowCanonical(v json.RawMessage) json.RawMessage {
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return v
	}
	out, err := json.Marshal(x)
	if err != nil {
		return v
	}
	return out
}

// FuzzCanonicalAsIs checks that every value the shortcut keeps as is is
// exactly what re-encoding gives.
func FuzzCanonicalAsIs(f *testing.F) {
	for _, s := range []string{`"WON"`, `null`, `true`, `"a<b"`, `"é"`, `"a\"b"`, `"x\\ny"`, `" "`, `""`, `"1"`, `12`, `[1]`, `"\u0001"`, `"  "`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if canonicalAsIs(v) && !bytes.Equal(slowCanonical(v), v) {
			t.Fatalf("%q kept as is, re-encoded it is %q", v, slowCanonical(v))
		}
	})
}

// BenchmarkCanonical is the cost of canonicalising a typical deal field
// (a plain string), with the as-is shortcut and without it.
func BenchmarkCanonical(b *testing.B) {
	v := json.RawMessage(`"C2:PREPAYMENT_INVOICE"`)
	b.Run("as-is", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = Canonical(v)
		}
	})
	b.Run("re-encoded", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = slowCanonical(v)
		}
	})
}
