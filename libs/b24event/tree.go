package b24event

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// checkKey validates the PHP bracket syntax of a decoded key, name[seg]...[seg],
// and returns its depth (the number of [seg] parts), failing with
// ErrTooDeep beyond maxDepth. Segments may be empty ("[]", append) but may
// not contain brackets; PHP would repair what we reject here (by mangling or
// truncating the name), which would make two different inputs look alike.
// It is generic so the JSON path can check a key still in its byte buffer
// without copying it.
func checkKey[K string | []byte](key K, maxDepth int) (int, error) {
	n := len(key)
	i := 0
	for i < n && key[i] != '[' {
		if key[i] == ']' {
			return 0, malformedKey(string(key), "unbalanced bracket")
		}
		i++
	}
	if i == 0 {
		return 0, malformedKey(string(key), "empty name")
	}
	depth := 0
	for i < n {
		if key[i] != '[' {
			return 0, malformedKey(string(key), "text after closing bracket")
		}
		i++
		for i < n && key[i] != '[' && key[i] != ']' {
			i++
		}
		if i == n || key[i] == '[' {
			return 0, malformedKey(string(key), "unbalanced bracket")
		}
		i++
		depth++
		if depth > maxDepth {
			return 0, fmt.Errorf("%w: key %q: depth > %d", ErrTooDeep, clip(string(key)), maxDepth)
		}
	}
	return depth, nil
}

// nesting tracks the sum of the depths of all keys. Each pair creates at
// most depth(key) arrays, so the sum bounds the number of maps Decode
// allocates: without it, 4096 pairs like a[][][][][][][][][][]=x would
// build 40960 maps (~15 MB) from a 100 KB body. It is capped at
// 2×MaxKeys, far above any real event (Bitrix24 nests at most 4 deep and
// mostly 1-2), and, being a sum over pairs, it can only shrink under
// redaction, so a redacted body never trips it where the original did not.
type nesting struct{ sum, max int }

func newNesting(lim Limits) nesting {
	if lim.MaxKeys > math.MaxInt/2 {
		return nesting{max: math.MaxInt}
	}
	return nesting{max: 2 * lim.MaxKeys}
}

func (n *nesting) add(depth int) error {
	n.sum += depth
	if n.sum > n.max {
		return fmt.Errorf("%w: keys nest more than %d levels in total (2×MaxKeys)", ErrTooManyKeys, n.max)
	}
	return nil
}

// nextIndexKey marks, inside a map under construction, the state used to
// resolve "[]" appends. It contains brackets, which no validated segment
// can, so it never collides with real data; it is removed before the tree
// is returned.
const nextIndexKey = "[next]"

// nextIndex is PHP's nNextFreeElement for one array.
type nextIndex struct {
	n    int64
	full bool // the largest key is MaxInt64: PHP refuses further appends
}

// treeBuilder inserts pairs into a PHP-shaped tree.
type treeBuilder struct {
	root map[string]any
	// indexed lists the maps that carry a nextIndexKey entry. Keeping the
	// append state inside the map itself (rather than in a side table keyed
	// by map identity) stays correct when a map is replaced, and costs
	// nothing for the common body that never uses "[]".
	indexed []map[string]any
}

// buildTree builds the PHP array for fields, whose keys have passed
// checkKey.
func buildTree(fields []Field) map[string]any {
	t := treeBuilder{root: make(map[string]any)}
	for i := range fields {
		t.insert(fields[i].Key, fields[i].Value, fields[i+1:])
	}
	return t.finish()
}

// buildTreeFiltered builds the PHP array for the fields for which keep is
// true, without copying them. Keys that fail checkKey are skipped: Fields of
// a hand-made Body may hold anything, and redaction must always produce a
// tree.
func buildTreeFiltered(fields []Field, keep func(*Field) bool) map[string]any {
	t := treeBuilder{root: make(map[string]any)}
	for i := range fields {
		f := &fields[i]
		if _, err := checkKey(f.Key, math.MaxInt); err == nil && keep(f) {
			t.insert(f.Key, f.Value, nil)
		}
	}
	return t.finish()
}

// finish removes the append state and returns the tree.
func (t *treeBuilder) finish() map[string]any {
	for _, m := range t.indexed {
		delete(m, nextIndexKey)
	}
	return t.root
}

// insert stores val under key (which has passed checkKey) with PHP
// semantics: the last write wins whether it is a string or an array, and
// "[]" appends. ahead holds the pairs that follow; it only serves to size
// new maps.
//
// Like PHP, it drops a pair that would append to an array whose largest
// key is already MaxInt64. Failing instead would let a redacted body fail
// where the original did not: removing a secret pair shifts later "[]"
// indexes, so a different array can end up full.
func (t *treeBuilder) insert(key, val string, ahead []Field) {
	pos := strings.IndexByte(key, '[') // end of the current segment
	if pos < 0 {
		pos = len(key)
	}
	name := key[:pos]
	cur := t.root
	for {
		k := name
		if k == "" {
			var ok bool
			if k, ok = t.appendIndex(cur); !ok {
				return // full: only pre-existing maps were visited, nothing to undo
			}
		} else if len(t.indexed) > 0 {
			t.noteKey(cur, k)
		}
		if pos == len(key) {
			cur[k] = val
			return
		}
		j := strings.IndexByte(key[pos:], ']')
		if key[pos] != '[' || j < 0 {
			return // unreachable after checkKey
		}
		child, ok := cur[k].(map[string]any)
		if !ok {
			child = make(map[string]any, directLeaves(key[:pos], ahead))
			cur[k] = child
		}
		cur, name, pos = child, key[pos+1:pos+j], pos+j+1
	}
}

// directLeaves estimates the size of the new map at path prefix: 1 plus the
// number of immediately following pairs that are direct leaves of it
// (auth[...] arrives as one run of a dozen pairs). Sizing the map up front
// saves its growth steps; the estimate never affects the result.
func directLeaves(prefix string, ahead []Field) int {
	if strings.Contains(prefix, "[]") {
		return 0 // each pair appends elsewhere
	}
	n := 1
	for i := range ahead {
		k := ahead[i].Key
		if len(k) <= len(prefix) || k[len(prefix)] != '[' || k[:len(prefix)] != prefix {
			break
		}
		if strings.IndexByte(k[len(prefix):], ']') == len(k)-len(prefix)-1 {
			n++
		}
	}
	return n
}

// appendIndex returns the key "[]" resolves to in m and advances m's next
// index, like PHP: the largest integer key + 1, or 0 for none. It reports
// false when the array is full (PHP drops the value with a warning).
func (t *treeBuilder) appendIndex(m map[string]any) (string, bool) {
	p, ok := m[nextIndexKey].(*nextIndex)
	if !ok {
		p = &nextIndex{}
		have := false
		for k := range m {
			if n, isInt := phpIntKey(k); isInt && (!have || n >= p.n) {
				p.n, have = n, true
			}
		}
		if have {
			if p.n == math.MaxInt64 {
				p.full = true
			} else {
				p.n++
			}
		}
		m[nextIndexKey] = p
		t.indexed = append(t.indexed, m)
	}
	if p.full {
		return "", false
	}
	k := strconv.FormatInt(p.n, 10)
	if p.n == math.MaxInt64 {
		p.full = true
	} else {
		p.n++
	}
	return k, true
}

// noteKey keeps m's next index ahead of an explicitly written integer key,
// as PHP does ("a[5]=x&a[]=y" puts y at 6).
func (t *treeBuilder) noteKey(m map[string]any, k string) {
	p, ok := m[nextIndexKey].(*nextIndex)
	if !ok || p.full {
		return
	}
	n, isInt := phpIntKey(k)
	if !isInt || n < p.n {
		return
	}
	if n == math.MaxInt64 {
		p.full = true
	} else {
		p.n = n + 1
	}
}

// phpIntKey reports whether PHP would store k as an integer key: a canonical
// decimal integer ("0", "567", "-3"; not "05", "+5", "-0") in int64 range.
func phpIntKey(k string) (int64, bool) {
	d := k
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	if d == "" || len(d) > 19 || (d[0] == '0' && (len(d) > 1 || len(k) > 1)) {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(k, 10, 64)
	return n, err == nil
}
