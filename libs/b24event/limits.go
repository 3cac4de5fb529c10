package b24event

import (
	"errors"
	"fmt"
)

// Limits bounds what Decode accepts. Zero fields take defaults.
//
// The limits exist because bodies are parsed before the application token is
// checked: anyone who can reach the ingress can make us parse anything. Each
// bound is checked before the work it protects (size before anything, pair
// count before decoding, key length and depth before building the tree).
// Negative values are treated like zero: there is deliberately no way to say
// "unlimited".
type Limits struct {
	// MaxBodyBytes is the largest body accepted, in bytes. Default 256 << 10.
	MaxBodyBytes int
	// MaxDepth is the largest bracket nesting depth of a key: "a" has depth
	// 0, "data[BOT][567][AUTH][access_token]" depth 4. Default 10.
	MaxDepth int
	// MaxKeys is the largest number of key=value pairs (for JSON, of
	// flattened leaves). Default 4096. It also caps the sum of the depths
	// of all keys at 2×MaxKeys, which bounds how many arrays (maps) a body
	// can make Decode build; exceeding either is ErrTooManyKeys.
	MaxKeys int
	// MaxKeyLen is the largest length of one decoded key in bytes, in
	// bracket notation. Default 512.
	MaxKeyLen int
}

// Default limits. Real Bitrix24 events are a few KiB with depth ≤ 4 and at
// most a few hundred pairs (bot messages), so these leave ample headroom.
const (
	defaultMaxBodyBytes = 256 << 10
	defaultMaxDepth     = 10
	defaultMaxKeys      = 4096
	defaultMaxKeyLen    = 512
)

// DefaultLimits returns the limits Decode uses for zero fields, so callers
// can start from them and tighten or relax one.
func DefaultLimits() Limits {
	return Limits{
		MaxBodyBytes: defaultMaxBodyBytes,
		MaxDepth:     defaultMaxDepth,
		MaxKeys:      defaultMaxKeys,
		MaxKeyLen:    defaultMaxKeyLen,
	}
}

// withDefaults fills zero (and negative) fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = defaultMaxBodyBytes
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = defaultMaxDepth
	}
	if l.MaxKeys <= 0 {
		l.MaxKeys = defaultMaxKeys
	}
	if l.MaxKeyLen <= 0 {
		l.MaxKeyLen = defaultMaxKeyLen
	}
	return l
}

// Sentinel errors returned (wrapped, with detail) by Decode, Event and
// FormFromJSON. Each exceeded limit has its own error so the ingress can
// count them separately and answer 413 for ErrBodyTooLarge, 415 for
// ErrUnsupportedContentType and 400 for the rest. Every error returned by
// this package matches exactly one of them with errors.Is.
var (
	// ErrBodyTooLarge: the body exceeds Limits.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("b24event: body too large")
	// ErrTooDeep: a key nests deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("b24event: key nested too deep")
	// ErrTooManyKeys: more pairs than Limits.MaxKeys, or keys nesting more
	// than 2×MaxKeys levels in total (see Limits.MaxKeys).
	ErrTooManyKeys = errors.New("b24event: too many keys")
	// ErrKeyTooLong: a decoded key is longer than Limits.MaxKeyLen.
	ErrKeyTooLong = errors.New("b24event: key too long")
	// ErrMalformed: the body (or, from Event, its content) is not what
	// Bitrix24 sends; the wrapped message says why.
	ErrMalformed = errors.New("b24event: malformed body")
	// ErrUnsupportedContentType: the media type is neither form nor JSON.
	ErrUnsupportedContentType = errors.New("b24event: unsupported content type")
)

// maxQuoted bounds how much of an untrusted key is quoted in an error, so a
// hostile body cannot blow up log lines.
const maxQuoted = 64

// clip shortens s for inclusion in an error message.
func clip(s string) string {
	if len(s) <= maxQuoted {
		return s
	}
	return s[:maxQuoted] + "..."
}

// malformedKey builds the ErrMalformed error for a bad key. Only keys are
// quoted, never values: values may be secrets.
func malformedKey(key, reason string) error {
	return fmt.Errorf("%w: key %q: %s", ErrMalformed, clip(key), reason)
}
