package b24event

import (
	"bytes"
	"fmt"
	"unsafe"
)

// decodeForm splits an x-www-form-urlencoded body into percent-decoded pairs.
//
// All keys and values are decoded back to back into one buffer sized by the
// body (decoding never grows the text), viewed as one string at the end,
// and the Fields point into that string: two allocations for the whole
// body instead of two per pair. The buffer is a plain local slice rather
// than a strings.Builder: appending through a pointer to a heap Builder
// costs a GC write barrier per append, which showed up as ~15% of Decode.
func decodeForm(body []byte, lim Limits) ([]Field, error) {
	n := countPairs(body)
	if n > lim.MaxKeys {
		return nil, fmt.Errorf("%w: %d pairs > %d", ErrTooManyKeys, n, lim.MaxKeys)
	}
	nest := newNesting(lim)
	buf := make([]byte, 0, len(body))
	// ends[2i] is where key i ends in sb, ends[2i+1] where its value ends;
	// key i+1 starts where value i ends. Typical events fit on the stack.
	var endsBuf [128]int
	ends := endsBuf[:0]
	rest := body
	for len(rest) > 0 {
		pair := rest
		if i := bytes.IndexByte(rest, '&'); i >= 0 {
			pair, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(pair) == 0 {
			continue // "a=1&&b=2": PHP skips empty pairs too
		}
		rawKey, rawVal := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			rawKey, rawVal = pair[:i], pair[i+1:]
		}
		// Every escape shrinks 3 bytes to 1, so a raw key over 3×max is
		// certainly too long once decoded: refuse it without decoding.
		// (Divided rather than multiplied: MaxKeyLen may be huge.)
		if len(rawKey)/3 > lim.MaxKeyLen {
			return nil, fmt.Errorf("%w: %d encoded bytes > %d", ErrKeyTooLong, len(rawKey), lim.MaxKeyLen)
		}
		start := len(buf)
		var ok bool
		if buf, ok = appendUnescaped(buf, rawKey); !ok {
			return nil, fmt.Errorf("%w: key %q: invalid percent-encoding", ErrMalformed, clip(string(rawKey)))
		}
		key := buf[start:]
		if len(key) > lim.MaxKeyLen {
			return nil, fmt.Errorf("%w: key %q: %d bytes > %d", ErrKeyTooLong, clip(string(key)), len(key), lim.MaxKeyLen)
		}
		depth, err := checkKey(key, lim.MaxDepth)
		if err != nil {
			return nil, err
		}
		if err := nest.add(depth); err != nil {
			return nil, err
		}
		ends = append(ends, len(buf))
		if buf, ok = appendUnescaped(buf, rawVal); !ok {
			return nil, fmt.Errorf("%w: value of key %q: invalid percent-encoding", ErrMalformed, clip(string(key)))
		}
		ends = append(ends, len(buf))
	}
	// buf is never written again, so the text can be viewed as a string in
	// place instead of copied (the copy was a second body-sized allocation).
	return fieldsFrom(unsafe.String(unsafe.SliceData(buf), len(buf)), ends), nil
}

// fieldsFrom cuts the decoded text into Fields by the recorded end offsets.
func fieldsFrom(s string, ends []int) []Field {
	fields := make([]Field, len(ends)/2)
	start := 0
	for i := range fields {
		k, v := ends[2*i], ends[2*i+1]
		fields[i] = Field{Key: s[start:k], Value: s[k:v]}
		start = v
	}
	return fields
}

// countPairs counts the non-empty &-separated pairs, so the pair limit is
// enforced before any decoding work.
func countPairs(b []byte) int {
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '&')
		if i < 0 {
			return n + 1
		}
		if i > 0 {
			n++
		}
		b = b[i+1:]
	}
	return n
}

// appendUnescaped appends the form-decoding of s ('+' is a space, %XX a
// byte) to buf. It reports false on a truncated or non-hex escape: PHP would
// pass those through, but a real Bitrix24 body never contains one, so it
// marks garbage or an attack.
func appendUnescaped(buf, s []byte) ([]byte, bool) {
	for {
		i := 0
		for i < len(s) && s[i] != '%' && s[i] != '+' {
			i++
		}
		buf = append(buf, s[:i]...)
		if i == len(s) {
			return buf, true
		}
		if s[i] == '+' {
			buf = append(buf, ' ')
			s = s[i+1:]
			continue
		}
		if i+2 >= len(s) {
			return buf, false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return buf, false
		}
		buf = append(buf, hi<<4|lo)
		s = s[i+3:]
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// EncodeForm encodes fields in order as application/x-www-form-urlencoded,
// the way PHP's http_build_query does (RFC 1738: space as '+', brackets as
// %5B/%5D, only A-Z a-z 0-9 - _ . left as they are), so the fake portal and
// the load generator produce byte-for-byte what Bitrix24 sends. Keys are
// written as given; use bracket notation for nesting.
func EncodeForm(fields []Field) []byte {
	n := 0
	for _, f := range fields {
		n += len(f.Key) + len(f.Value) + 2
	}
	out := make([]byte, 0, n+n/4)
	for i, f := range fields {
		if i > 0 {
			out = append(out, '&')
		}
		out = appendFormPair(out, f)
	}
	return out
}

func appendFormPair(out []byte, f Field) []byte {
	out = appendEscaped(out, f.Key)
	out = append(out, '=')
	return appendEscaped(out, f.Value)
}

const upperHex = "0123456789ABCDEF"

// formSafe marks the bytes urlencode leaves as they are.
var formSafe = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	t['-'], t['_'], t['.'] = true, true, true
	return t
}()

// appendEscaped appends s form-encoded like PHP's urlencode, copying runs of
// safe bytes at once.
func appendEscaped(out []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if formSafe[c] {
			continue
		}
		out = append(out, s[start:i]...)
		if c == ' ' {
			out = append(out, '+')
		} else {
			out = append(out, '%', upperHex[c>>4], upperHex[c&15])
		}
		start = i + 1
	}
	return append(out, s[start:]...)
}
