// Package change turns two snapshots of a mirrored entity into a
// DomainChange: a canonical hash (so an unchanged entity is a no-op), a
// field-level diff (old → new, JSON-encoded), and a deterministic change id
// (so publishing the same change twice is stored once).
package change

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Fields is an entity's state: field name to JSON value, as the portal sent it.
type Fields map[string]json.RawMessage

// Canonical returns v re-encoded with sorted object keys and no
// insignificant space, so equal values compare equal byte for byte. Numbers
// keep their exact text. Invalid JSON is returned as is.
func Canonical(v json.RawMessage) json.RawMessage {
	if len(v) == 0 || canonicalAsIs(v) {
		return v
	}
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

// Hash is the hex SHA-256 of the canonical form of f without the ignored
// fields. Equal states hash equal regardless of key order or spacing.
func Hash(f Fields, ignore ...string) string {
	keys := make([]string, 0, len(f))
	for k := range f {
		if !slices.Contains(ignore, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(strconv.Quote(k)))
		h.Write([]byte{':'})
		h.Write(Canonical(f[k]))
		h.Write([]byte{'\n'})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Diff lists the fields whose canonical values differ between old and new,
// sorted by name. A field missing on one side has an empty JSON string on
// that side. Ignored fields are left out.
func Diff(old, new Fields, ignore ...string) []*eventsv1.FieldChange {
	var out []*eventsv1.FieldChange
	seen := map[string]bool{}
	for _, side := range []Fields{old, new} {
		for k := range side {
			if seen[k] || slices.Contains(ignore, k) {
				continue
			}
			seen[k] = true
			o, n := Canonical(old[k]), Canonical(new[k])
			if !bytes.Equal(o, n) {
				out = append(out, &eventsv1.FieldChange{Field: k, OldJson: string(o), NewJson: string(n)})
			}
		}
	}
	slices.SortFunc(out, func(a, b *eventsv1.FieldChange) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// SameValue reports whether two JSON values mean the same to Bitrix24,
// which sends most values as strings: "100" equals 100 and "100.00", "Y"
// equals "Y", arrays compare element by element.
func SameValue(a, b json.RawMessage) bool {
	if bytes.Equal(Canonical(a), Canonical(b)) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return sameAny(x, y)
}

func sameAny(x, y any) bool {
	xs, xok := x.([]any)
	ys, yok := y.([]any)
	if xok || yok {
		if !xok {
			xs = []any{x}
		}
		if !yok {
			ys = []any{y}
		}
		if len(xs) != len(ys) {
			return false
		}
		for i := range xs {
			if !sameAny(xs[i], ys[i]) {
				return false
			}
		}
		return true
	}
	sx, sy := scalar(x), scalar(y)
	if sx == sy {
		return true
	}
	fx, errx := strconv.ParseFloat(sx, 64)
	fy, erry := strconv.ParseFloat(sy, 64)
	return errx == nil && erry == nil && fx == fy
}

func scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "true"
		}
		return "false"
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ID is the deterministic id of a change: the same entity reaching the same
// state (snapshot hash) by the same kind of change has the same id, so a
// change re-published after a crash is de-duplicated by JetStream and by
// downstream consumers.
func ID(memberID, entityType, entityID string, kind eventsv1.ChangeKind, snapshotHash string) string {
	sum := sha256.Sum256([]byte(memberID + "|" + entityType + "|" + entityID + "|" + kind.String() + "|" + snapshotHash))
	return "chg-" + hex.EncodeToString(sum[:16])
}

// Build returns the DomainChange from old to new state. kind is CREATED when
// there was no live old state, DELETED when new is nil, UPDATED otherwise.
func Build(memberID, entityType, entityID string, old, new Fields, live bool, sourceEventID string, at time.Time, ignore ...string) *eventsv1.DomainChange {
	kind := eventsv1.ChangeKind_CHANGE_KIND_UPDATED
	switch {
	case new == nil:
		kind = eventsv1.ChangeKind_CHANGE_KIND_DELETED
	case !live:
		kind = eventsv1.ChangeKind_CHANGE_KIND_CREATED
		old = nil
	}
	hash := ""
	if new != nil {
		hash = Hash(new, ignore...)
	}
	return &eventsv1.DomainChange{
		Id:            ID(memberID, entityType, entityID, kind, hash),
		MemberId:      memberID,
		EntityType:    entityType,
		EntityId:      entityID,
		Kind:          kind,
		Changes:       Diff(old, new, ignore...),
		SnapshotHash:  hash,
		SourceEventId: sourceEventID,
		At:            timestamppb.New(at),
	}
}

// Subject is where dc is published. An entity id that is not a valid
// subject token (call ids contain dots) has every other byte replaced by
// '_' in the subject; the payload keeps the real id.
func Subject(dc *eventsv1.DomainChange) string {
	return eventbus.Change(dc.GetEntityType(), dc.GetMemberId(), SubjectToken(dc.GetEntityId()))
}

// SubjectToken makes s usable as one subject token: bytes other than
// letters, digits, '-' and '_' become '_', and it is cut to 128 bytes.
func SubjectToken(s string) string {
	if eventbus.ValidToken(s) {
		return s
	}
	b := []byte(s)
	if len(b) > 128 {
		b = b[:128]
	}
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return string(b)
}

// canonicalAsIs reports whether v is already in the form Canonical gives,
// so re-encoding can be skipped: null, true, false, or a string of
// printable ASCII that json.Marshal would write unchanged (no escapes, no
// HTML characters). Most Bitrix24 field values are such strings, and
// hashing and diffing a deal canonicalises every field several times.
// BenchmarkCanonical (change_test.go) measures it.
func canonicalAsIs(v json.RawMessage) bool {
	switch string(v) {
	case "null", "true", "false":
		return true
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return false
	}
	for _, c := range v[1 : len(v)-1] {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
