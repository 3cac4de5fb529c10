package b24event

import "strings"

// IsSecretKey reports whether a key carries a secret: any of its segments
// (the name or a bracketed part; a plain map key is its own only segment),
// compared case-insensitively,
//   - ends in "token" (access_token, refresh_token, application_token and
//     the per-bot tokens of bot events),
//   - contains "secret" or "password" (client_secret, any *secret* or
//     *password* field an application or form sends), or
//   - is one of the placement and embedded-application credentials
//     AUTH_ID (an access token), REFRESH_ID (a refresh token) and APP_SID
//     (the application's session id), which Bitrix24 POSTs to a
//     placement's or an embedded application's handler URL.
//
// The rule is by name rather than by a list of paths because Bitrix24 puts
// credentials at several depths (auth[access_token],
// data[BOT][567][AUTH][access_token], data[BOT][567][application_token]) and
// new events may add more; a false positive costs a field nobody needs, a
// false negative leaks a credential into the stream. Checking every segment,
// not only the last, also catches data[refresh_token][0]=... .
func IsSecretKey(key string) bool {
	start := 0
	for i := 0; i <= len(key); i++ {
		if i < len(key) && key[i] != '[' && key[i] != ']' {
			continue
		}
		if isSecretSegment(key[start:i]) {
			return true
		}
		start = i + 1
	}
	return false
}

// isSecretSegment is the per-segment rule of IsSecretKey. It runs for every
// pair on the hot path, so the common test avoids strings.EqualFold and
// lower-casing: b|0x20 equals a lower-case ASCII letter only for that letter
// in either case. Segments shorter than 5 bytes ("ID", "FIELDS" aside) are
// never secret and return at once.
func isSecretSegment(s string) bool {
	n := len(s)
	if n < 5 {
		return false
	}
	if s[n-5]|0x20 == 't' && s[n-4]|0x20 == 'o' && s[n-3]|0x20 == 'k' && s[n-2]|0x20 == 'e' && s[n-1]|0x20 == 'n' {
		return true
	}
	switch n {
	case len("AUTH_ID"):
		if strings.EqualFold(s, "AUTH_ID") || strings.EqualFold(s, "APP_SID") {
			return true
		}
	case len("REFRESH_ID"):
		if strings.EqualFold(s, "REFRESH_ID") {
			return true
		}
	}
	return containsFold(s, "secret") || containsFold(s, "password")
}

// containsFold reports whether s contains the lower-case ASCII word w in
// any letter case.
func containsFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i]|0x20 != w[0] {
			continue
		}
		j := 1
		for j < len(w) && s[i+j]|0x20 == w[j] {
			j++
		}
		if j == len(w) {
			return true
		}
	}
	return false
}

// Redacted returns the body re-encoded in its own content type with every
// secret pair removed (see IsSecretKey), the remaining pairs in their
// original order. It is what the ingress publishes: the stream must never
// hold a credential, and the auth[application_token] it drops must already
// have been verified.
//
// It is built from Fields, not by re-parsing, and decoding it yields exactly
// RedactedTree(). Form bodies are written like EncodeForm; JSON bodies are
// written as the JSON object equivalent to the flattened pairs (every scalar
// a string, arrays as objects keyed by position), which decodes to the same
// pairs.
//
// For what Bitrix24 sends it is never longer than the original body, but it
// can be for other senders: pairs are re-encoded canonically (a raw '[' sent
// unescaped becomes %5B), JSON numbers gain quotes and arrays gain keys.
// Whoever decodes it must not use a tighter MaxBodyBytes than the ingress
// (3× covers every form body).
func (b *Body) Redacted() []byte {
	return b.AppendRedacted(make([]byte, 0, b.sizeHint()+b.sizeHint()/4))
}

// AppendRedacted appends Redacted() to dst and returns the extended slice,
// so a hot path can reuse one buffer across requests.
func (b *Body) AppendRedacted(dst []byte) []byte {
	if b.ContentType == ContentTypeJSON {
		return b.appendRedactedJSON(dst)
	}
	start := len(dst)
	for _, f := range b.Fields {
		if IsSecretKey(f.Key) {
			continue
		}
		if len(dst) > start {
			dst = append(dst, '&')
		}
		dst = appendFormPair(dst, f)
	}
	return dst
}

// sizeHint guesses the size of Redacted(): at most the original body for
// bodies encoded the way Bitrix24 encodes them.
func (b *Body) sizeHint() int {
	if b.rawLen > 0 {
		return b.rawLen
	}
	n := 0
	for _, f := range b.Fields {
		n += len(f.Key) + len(f.Value) + 2
	}
	return n + n/4
}

// appendRedactedJSON nests the pairs back into one JSON object. It
// streams: an object stays open while consecutive keys share its prefix, so
// a repeated or interleaved key simply produces a repeated member, which
// decodes to the same pairs again.
func (b *Body) appendRedactedJSON(out []byte) []byte {
	out = append(out, '{')
	var (
		open  []string // keys of the objects open below the top level
		segs  []string
		comma bool // a member precedes in the innermost open object
	)
	for _, f := range b.Fields {
		if IsSecretKey(f.Key) {
			continue
		}
		segs = splitKey(segs[:0], f.Key)
		n := len(segs)
		c := 0
		for c < len(open) && c < n-1 && open[c] == segs[c] {
			c++
		}
		for len(open) > c {
			out = append(out, '}')
			open = open[:len(open)-1]
			comma = true
		}
		for _, s := range segs[c : n-1] {
			if comma {
				out = append(out, ',')
			}
			out = appendJSONQuoted(out, s)
			out = append(out, ':', '{')
			open = append(open, s)
			comma = false
		}
		if comma {
			out = append(out, ',')
		}
		out = appendJSONQuoted(out, segs[n-1])
		out = append(out, ':')
		out = appendJSONQuoted(out, f.Value)
		comma = true
	}
	for range open {
		out = append(out, '}')
	}
	return append(out, '}')
}

// splitKey appends the segments of a bracket key (name first) to dst. It
// never fails: a key that is not valid bracket notation (only possible in a
// hand-made Body) is split as well as it can be.
func splitKey(dst []string, key string) []string {
	i := strings.IndexByte(key, '[')
	if i < 0 {
		return append(dst, key)
	}
	dst = append(dst, key[:i])
	rest := key[i:]
	for len(rest) > 0 {
		rest = rest[1:] // '[' (or stray text, skipped)
		j := strings.IndexByte(rest, ']')
		if j < 0 {
			return append(dst, rest)
		}
		dst = append(dst, rest[:j])
		rest = rest[j+1:]
	}
	return dst
}

// RedactedTree returns a new tree without secrets: exactly the tree that
// decoding Redacted() would produce, so what the ingress logs or inspects
// matches what it publishes. It never aliases Tree's maps.
//
// It is built from Fields. A hand-made Body with a Tree but no Fields gets a
// copy of Tree with the secret keys (and their subtrees) removed.
func (b *Body) RedactedTree() map[string]any {
	if len(b.Fields) == 0 && len(b.Tree) > 0 {
		return pruneSecrets(b.Tree)
	}
	return buildTreeFiltered(b.Fields, func(f *Field) bool { return !IsSecretKey(f.Key) })
}

// pruneSecrets deep-copies m without secret keys.
func pruneSecrets(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if IsSecretKey(k) {
			continue
		}
		if sub, ok := v.(map[string]any); ok {
			v = pruneSecrets(sub)
		}
		out[k] = v
	}
	return out
}

// hasSecrets reports whether any key in the tree m is secret, so the
// common secret-free data subtree can be used as it is.
func hasSecrets(m map[string]any) bool {
	for k, v := range m {
		if IsSecretKey(k) {
			return true
		}
		if sub, ok := v.(map[string]any); ok && hasSecrets(sub) {
			return true
		}
	}
	return false
}
