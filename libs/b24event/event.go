package b24event

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is the typed view of a decoded body: the fields every consumer
// needs, without walking the tree.
//
// It holds the raw credentials of the POST (the ingress needs the
// application token to authenticate it and the install flow needs the
// access and refresh tokens) so an Event must never be logged or stored as
// a whole; Data, however, never contains secrets.
type Event struct {
	// Name is the event code, upper-cased, e.g. ONCRMDEALUPDATE. It is a
	// safe NATS subject token: [A-Z0-9_]{1,64}.
	Name string
	// MemberID is auth[member_id], the stable portal id and tenant key. It
	// is a safe NATS subject token: [A-Za-z0-9_-]{1,64}.
	MemberID string
	// Domain is auth[domain]. It changes when a portal is renamed; key
	// tenants by MemberID.
	Domain string
	// HandlerID is event_handler_id, the subscription row (may be empty).
	HandlerID string
	// TSRaw is ts as sent.
	TSRaw string
	// TS is TSRaw parsed as unix seconds, in UTC; zero if absent or invalid.
	TS time.Time
	// ApplicationToken is auth[application_token], the secret shared with
	// the portal. Compare it in constant time; never store it.
	ApplicationToken string
	// ClientEndpoint is auth[client_endpoint]. Untrusted until the token is
	// verified.
	ClientEndpoint string
	// ServerEndpoint is auth[server_endpoint]. Untrusted until the token is
	// verified.
	ServerEndpoint string
	// AccessToken is auth[access_token] (needed by the app-install flow;
	// never stored).
	AccessToken string
	// RefreshToken is auth[refresh_token] (sent on ONAPPINSTALL; never
	// stored in plaintext).
	RefreshToken string
	// EntityID is the id of the changed entity, see Body.Event; empty when
	// the event has none.
	EntityID string
	// Data is the data subtree without secrets: an empty map if data is
	// absent, empty or the literal "undefined". It may share maps with
	// Body.Tree; treat it as read-only.
	Data map[string]any
}

// Event builds the typed view.
//
// It returns an error wrapping ErrMalformed when event or auth[member_id] is
// missing, when either is not a safe NATS subject token (member_id:
// [A-Za-z0-9_-]{1,64}; event: [A-Z0-9_]{1,64} after upper-casing), or when
// data is a plain string other than "" or "undefined". The strictness is
// deliberate: both values become subject tokens, and a body that fails here
// is not something Bitrix24 sends.
//
// Other fields are taken as they are when they are strings and left empty
// otherwise. EntityID is, by event:
//
//   - ONCRM*: data[FIELDS][ID];
//   - ONTASKADD, ONTASKUPDATE: data[FIELDS_AFTER][ID]; ONTASKDELETE:
//     data[FIELDS_BEFORE][ID];
//   - ONTASKCOMMENT*: the task, data[FIELDS_AFTER][TASK_ID] (or
//     FIELDS_BEFORE when FIELDS_AFTER has none); see Event.TaskComment for
//     the comment itself;
//   - ONVOXIMPLANT*, ONEXTERNALCALL*: data[CALL_ID];
//   - anything else: empty.
func (b *Body) Event() (*Event, error) {
	raw, _ := b.Tree["event"].(string)
	auth, _ := b.Tree["auth"].(map[string]any)
	member := str(auth, "member_id")
	name, err := checkIdentity(raw, member)
	if err != nil {
		return nil, err
	}
	data, err := b.data()
	if err != nil {
		return nil, err
	}
	ev := &Event{
		Name:             name,
		MemberID:         member,
		Domain:           str(auth, "domain"),
		HandlerID:        str(b.Tree, "event_handler_id"),
		TSRaw:            str(b.Tree, "ts"),
		ApplicationToken: str(auth, "application_token"),
		ClientEndpoint:   str(auth, "client_endpoint"),
		ServerEndpoint:   str(auth, "server_endpoint"),
		AccessToken:      str(auth, "access_token"),
		RefreshToken:     str(auth, "refresh_token"),
		Data:             data,
	}
	ev.TS = parseTS(ev.TSRaw)
	ev.EntityID = entityID(name, data)
	return ev, nil
}

// checkIdentity validates the event code and auth[member_id] and returns
// the upper-cased code.
func checkIdentity(raw, member string) (string, error) {
	if raw == "" {
		return "", fmt.Errorf("%w: missing event", ErrMalformed)
	}
	name, ok := eventName(raw)
	if !ok {
		return "", fmt.Errorf("%w: event %q is not [A-Z0-9_]{1,64}", ErrMalformed, clip(raw))
	}
	if member == "" {
		return "", fmt.Errorf("%w: missing auth[member_id]", ErrMalformed)
	}
	if !isMemberID(member) {
		return "", fmt.Errorf("%w: auth[member_id] %q is not [A-Za-z0-9_-]{1,64}", ErrMalformed, clip(member))
	}
	return name, nil
}

// errDataString is the error for a data pair that is a plain string other
// than "" or "undefined".
var errDataString = fmt.Errorf("%w: data is a string, not an array", ErrMalformed)

// data returns the data subtree without secrets. Most events have no secret
// pair under data, so the subtree is shared, not copied. Otherwise (bot
// events carry credentials under data[BOT]) it is rebuilt from the
// non-secret pairs: the data subtree of exactly what a consumer decoding the
// published body sees, so both compute the same MessageID. Deciding by the
// pairs rather than by the final tree matters: an overwritten secret pair
// can still have shifted a later "[]" index.
func (b *Body) data() (map[string]any, error) {
	v := b.Tree["data"]
	if len(b.Fields) > 0 {
		if secretData(b.Fields) {
			v = buildTreeFiltered(b.Fields, func(f *Field) bool {
				return hasName(f.Key, "data") && !IsSecretKey(f.Key)
			})["data"]
		}
	} else if m, ok := v.(map[string]any); ok && hasSecrets(m) {
		v = pruneSecrets(m) // a hand-made Body: the tree is all there is
	}
	switch v := v.(type) {
	case nil:
		return map[string]any{}, nil
	case string:
		if v == "" || v == "undefined" {
			return map[string]any{}, nil
		}
		return nil, errDataString
	case map[string]any:
		return v, nil
	default: // only in a hand-made Body
		return nil, fmt.Errorf("%w: data has type %T", ErrMalformed, v)
	}
}

// secretData reports whether any pair under data is secret.
func secretData(fields []Field) bool {
	for i := range fields {
		if hasName(fields[i].Key, "data") && IsSecretKey(fields[i].Key) {
			return true
		}
	}
	return false
}

// TaskComment returns the identifiers of the comment an ONTASKCOMMENT* event
// is about (EntityID is the task). Since tasks 25.700 (the task card with a
// chat) Bitrix24 sends ID=0 plus the chat MESSAGE_ID; commentID is then
// empty and messageID set. Both are empty for other events.
func (e *Event) TaskComment() (commentID, messageID string) {
	if !strings.HasPrefix(e.Name, "ONTASKCOMMENT") {
		return "", ""
	}
	f := taskCommentFields(e.Data)
	commentID = str(f, "ID")
	if commentID == "0" {
		commentID = ""
	}
	return commentID, str(f, "MESSAGE_ID")
}

func taskCommentFields(data map[string]any) map[string]any {
	if f, ok := data["FIELDS_AFTER"].(map[string]any); ok {
		return f
	}
	f, _ := data["FIELDS_BEFORE"].(map[string]any)
	return f
}

func entityID(name string, data map[string]any) string {
	switch {
	case strings.HasPrefix(name, "ONCRM"):
		return strPath(data, "FIELDS", "ID")
	case name == "ONTASKADD", name == "ONTASKUPDATE":
		return strPath(data, "FIELDS_AFTER", "ID")
	case name == "ONTASKDELETE":
		return strPath(data, "FIELDS_BEFORE", "ID")
	case strings.HasPrefix(name, "ONTASKCOMMENT"):
		if id := strPath(data, "FIELDS_AFTER", "TASK_ID"); id != "" {
			return id
		}
		return strPath(data, "FIELDS_BEFORE", "TASK_ID")
	case strings.HasPrefix(name, "ONVOXIMPLANT"), strings.HasPrefix(name, "ONEXTERNALCALL"):
		return str(data, "CALL_ID")
	}
	return ""
}

// str returns m[k] if it is a string (a nil map reads as empty).
func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func strPath(m map[string]any, outer, inner string) string {
	sub, _ := m[outer].(map[string]any)
	return str(sub, inner)
}

// hasName reports whether a bracket key's name (first segment) is name.
func hasName(key, name string) bool {
	return strings.HasPrefix(key, name) && (len(key) == len(name) || key[len(name)] == '[')
}

// eventName upper-cases an ASCII event code and checks it is a safe subject
// token. Codes that are already upper case (all real ones) are returned
// without allocating.
func eventName(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	lower := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_':
		default:
			return "", false
		}
	}
	if lower {
		s = strings.ToUpper(s)
	}
	return s, true
}

func isMemberID(s string) bool {
	if len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// maxTS is 9999-12-31T23:59:59Z; anything later is not a real timestamp.
const maxTS = 253402300799

// parseTS parses unix seconds; anything else (including 0 and negative
// values, which Bitrix24 never sends) gives the zero time.
func parseTS(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > maxTS {
		return time.Time{}
	}
	return time.Unix(n, 0).UTC()
}
