package b24event

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// flattenJSON turns a JSON object into the pairs http_build_query would
// send for the same PHP array, in document order: nested objects become
// bracket keys, arrays use their positions as keys, numbers keep their
// literal text, true/false become "1"/"0", and null and empty containers
// produce nothing. Limits apply to the flattened pairs; depth is also
// enforced on containers that produce no pair, so nesting cannot exhaust
// the stack.
//
// It is a small hand-written parser rather than encoding/json because it
// must keep key order and number text, and because its work and memory are
// bounded by the limits before it allocates.
func flattenJSON(src []byte, lim Limits) ([]Field, error) {
	f := flattener{src: src, lim: lim, nest: newNesting(lim), arena: make([]byte, 0, len(src))}
	f.skipWS()
	if f.pos >= len(src) || src[f.pos] != '{' {
		return nil, f.errorf("top-level value is not an object")
	}
	if err := f.object(-1); err != nil {
		return nil, err
	}
	f.skipWS()
	if f.pos != len(src) {
		return nil, f.errorf("data after the top-level object")
	}
	return fieldsFrom(string(f.arena), f.ends), nil
}

// FormFromJSON converts a JSON object such as the documentation fixtures into
// form fields in document order, exactly as PHP's http_build_query would
// flatten the same array: nested objects become bracket keys
// (data[FIELDS][ID]), arrays use their positions as keys, every scalar
// becomes a string (numbers as written, true as "1", false as "0"), and null
// values and empty objects/arrays are omitted. Key order is preserved as in
// the document, duplicates included. false is "0" rather than PHP's
// (string)false "" because http_build_query, which builds the POSTs Bitrix24
// sends, writes booleans as integers.
//
// It enforces no size limit (the input is the caller's own), but it does
// reject nesting deeper than 64 (ErrTooDeep). Invalid JSON, a top level that
// is not an object and keys that cannot be written in bracket notation are
// ErrMalformed.
func FormFromJSON(data []byte) ([]Field, error) {
	return flattenJSON(data, Limits{
		MaxBodyBytes: math.MaxInt,
		MaxDepth:     64,
		MaxKeys:      math.MaxInt,
		MaxKeyLen:    math.MaxInt,
	})
}

type flattener struct {
	src   []byte
	pos   int
	lim   Limits
	arena []byte // decoded keys and values, back to back
	ends  []int  // end offsets in arena, as in decodeForm
	path  []byte // key of the current position, in bracket notation
	n     int    // pairs emitted
	nest  nesting
}

func (f *flattener) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: json at offset %d: %s", ErrMalformed, f.pos, fmt.Sprintf(format, args...))
}

func (f *flattener) skipWS() {
	for f.pos < len(f.src) {
		switch f.src[f.pos] {
		case ' ', '\t', '\n', '\r':
			f.pos++
		default:
			return
		}
	}
}

// enter checks the depth of the members of a container whose own key has
// the given depth (-1 for the top-level object).
func (f *flattener) enter(depth int) error {
	if depth+1 > f.lim.MaxDepth {
		return fmt.Errorf("%w: json at offset %d: depth > %d", ErrTooDeep, f.pos, f.lim.MaxDepth)
	}
	return nil
}

// object parses {...} at f.pos; depth is that of its own key.
func (f *flattener) object(depth int) error {
	if err := f.enter(depth); err != nil {
		return err
	}
	f.pos++ // '{'
	f.skipWS()
	if f.pos < len(f.src) && f.src[f.pos] == '}' {
		f.pos++
		return nil
	}
	for {
		f.skipWS()
		if f.pos >= len(f.src) || f.src[f.pos] != '"' {
			return f.errorf("expected a string key")
		}
		mark := len(f.path)
		if depth >= 0 {
			f.path = append(f.path, '[')
		}
		var err error
		if f.path, err = f.appendString(f.path); err != nil {
			return err
		}
		if depth >= 0 {
			f.path = append(f.path, ']')
		}
		f.skipWS()
		if f.pos >= len(f.src) || f.src[f.pos] != ':' {
			return f.errorf("expected ':'")
		}
		f.pos++
		if err := f.value(depth + 1); err != nil {
			return err
		}
		f.path = f.path[:mark]
		f.skipWS()
		if f.pos >= len(f.src) {
			return f.errorf("unterminated object")
		}
		switch f.src[f.pos] {
		case ',':
			f.pos++
		case '}':
			f.pos++
			return nil
		default:
			return f.errorf("expected ',' or '}'")
		}
	}
}

// array parses [...] at f.pos; elements are keyed by position, like a PHP
// list.
func (f *flattener) array(depth int) error {
	if err := f.enter(depth); err != nil {
		return err
	}
	f.pos++ // '['
	f.skipWS()
	if f.pos < len(f.src) && f.src[f.pos] == ']' {
		f.pos++
		return nil
	}
	for i := 0; ; i++ {
		mark := len(f.path)
		f.path = append(f.path, '[')
		f.path = strconv.AppendInt(f.path, int64(i), 10)
		f.path = append(f.path, ']')
		if err := f.value(depth + 1); err != nil {
			return err
		}
		f.path = f.path[:mark]
		f.skipWS()
		if f.pos >= len(f.src) {
			return f.errorf("unterminated array")
		}
		switch f.src[f.pos] {
		case ',':
			f.pos++
		case ']':
			f.pos++
			return nil
		default:
			return f.errorf("expected ',' or ']'")
		}
	}
}

// value parses any value whose key (f.path) has the given depth.
func (f *flattener) value(depth int) error {
	f.skipWS()
	if f.pos >= len(f.src) {
		return f.errorf("unexpected end of input")
	}
	switch c := f.src[f.pos]; {
	case c == '{':
		return f.object(depth)
	case c == '[':
		return f.array(depth)
	case c == '"':
		if err := f.startLeaf(); err != nil {
			return err
		}
		var err error
		if f.arena, err = f.appendString(f.arena); err != nil {
			return err
		}
		f.ends = append(f.ends, len(f.arena))
		return nil
	case c == 't':
		return f.literal("true", "1")
	case c == 'f':
		return f.literal("false", "0")
	case c == 'n':
		if !f.hasPrefix("null") {
			return f.errorf("invalid literal")
		}
		f.pos += len("null") // http_build_query skips nulls
		return nil
	case c == '-' || ('0' <= c && c <= '9'):
		start := f.pos
		if !f.number() {
			return f.errorf("invalid number")
		}
		if err := f.startLeaf(); err != nil {
			return err
		}
		f.arena = append(f.arena, f.src[start:f.pos]...)
		f.ends = append(f.ends, len(f.arena))
		return nil
	}
	return f.errorf("unexpected character %q", f.src[f.pos])
}

// startLeaf counts a pair, checks its key and writes the key to the arena.
func (f *flattener) startLeaf() error {
	f.n++
	if f.n > f.lim.MaxKeys {
		return fmt.Errorf("%w: more than %d leaves", ErrTooManyKeys, f.lim.MaxKeys)
	}
	if len(f.path) > f.lim.MaxKeyLen {
		return fmt.Errorf("%w: key %q: %d bytes > %d", ErrKeyTooLong, clip(string(f.path)), len(f.path), f.lim.MaxKeyLen)
	}
	start := len(f.arena)
	f.arena = append(f.arena, f.path...)
	// A JSON key may itself contain brackets ({"a[b]": ...}); the result
	// must still be a valid bracket key, or it could not round-trip.
	depth, err := checkKey(f.arena[start:], f.lim.MaxDepth)
	if err != nil {
		return err
	}
	if err := f.nest.add(depth); err != nil {
		return err
	}
	f.ends = append(f.ends, len(f.arena))
	return nil
}

func (f *flattener) hasPrefix(lit string) bool {
	return len(f.src)-f.pos >= len(lit) && string(f.src[f.pos:f.pos+len(lit)]) == lit
}

func (f *flattener) literal(lit, val string) error {
	if !f.hasPrefix(lit) {
		return f.errorf("invalid literal")
	}
	if err := f.startLeaf(); err != nil {
		return err
	}
	f.pos += len(lit)
	f.arena = append(f.arena, val...)
	f.ends = append(f.ends, len(f.arena))
	return nil
}

// number advances over an RFC 8259 number and reports whether it was valid.
func (f *flattener) number() bool {
	s, i := f.src, f.pos
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && '1' <= s[i] && s[i] <= '9':
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		d := i
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
		}
		if i == d {
			return false
		}
	}
	f.pos = i
	return true
}

// appendString decodes the JSON string at f.pos onto dst. Invalid UTF-8 is
// kept as it is and lone surrogates become U+FFFD, as encoding/json does.
func (f *flattener) appendString(dst []byte) ([]byte, error) {
	s := f.src
	i := f.pos + 1 // opening quote
	for {
		start := i
		for i < len(s) && s[i] != '"' && s[i] != '\\' && s[i] >= 0x20 {
			i++
		}
		dst = append(dst, s[start:i]...)
		if i >= len(s) {
			f.pos = i
			return dst, f.errorf("unterminated string")
		}
		switch c := s[i]; {
		case c == '"':
			f.pos = i + 1
			return dst, nil
		case c < 0x20:
			f.pos = i
			return dst, f.errorf("control character in string")
		}
		// backslash
		i++
		if i >= len(s) {
			f.pos = i
			return dst, f.errorf("unterminated escape")
		}
		switch s[i] {
		case '"', '\\', '/':
			dst = append(dst, s[i])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(s, i+1)
			if !ok {
				f.pos = i
				return dst, f.errorf("invalid \\u escape")
			}
			i += 4
			if utf16IsSurrogate(r) {
				r2, ok2 := rune(0), false
				if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
					r2, ok2 = hex4(s, i+3)
				}
				if c := utf16Decode(r, r2); ok2 && c != utf8.RuneError {
					r = c
					i += 6
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			f.pos = i
			return dst, f.errorf("invalid escape")
		}
		i++
	}
}

func hex4(s []byte, i int) (rune, bool) {
	if i+4 > len(s) {
		return 0, false
	}
	var r rune
	for _, c := range s[i : i+4] {
		v, ok := unhex(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

func utf16IsSurrogate(r rune) bool { return 0xd800 <= r && r < 0xe000 }

// utf16Decode combines a surrogate pair, or returns RuneError.
func utf16Decode(r1, r2 rune) rune {
	if 0xd800 <= r1 && r1 < 0xdc00 && 0xdc00 <= r2 && r2 < 0xe000 {
		return (r1-0xd800)<<10 | (r2 - 0xdc00) + 0x10000
	}
	return utf8.RuneError
}

// appendJSONQuoted appends s as a JSON string. Only what JSON requires is
// escaped; other bytes, invalid UTF-8 included, pass through so that
// decoding the result gives back exactly s.
func appendJSONQuoted(out []byte, s string) []byte {
	out = append(out, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		out = append(out, s[start:i]...)
		switch c {
		case '"', '\\':
			out = append(out, '\\', c)
		case '\n':
			out = append(out, '\\', 'n')
		case '\r':
			out = append(out, '\\', 'r')
		case '\t':
			out = append(out, '\\', 't')
		default:
			out = append(out, '\\', 'u', '0', '0', upperHex[c>>4], upperHex[c&15])
		}
		start = i + 1
	}
	out = append(out, s[start:]...)
	return append(out, '"')
}
