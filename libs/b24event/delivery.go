package b24event

import (
	"slices"
	"strings"
)

// Delivery is one POST as the ingress handles it: the typed event, its
// message id and the pairs to publish without secrets.
type Delivery struct {
	// ContentType is ContentTypeForm or ContentTypeJSON.
	ContentType string
	// Event is exactly what Decode followed by Body.Event gives.
	Event *Event
	// MessageID is MessageID(Event).
	MessageID string

	body Body // Fields and rawLen only: Tree is never built here
}

// DecodeDelivery is Decode, Body.Event and MessageID in one call, with the
// same results and the same errors, for the ingress's hot path.
//
// Building the PHP tree (a map per array, a boxed string per value) is
// most of the cost of Decode, and the ingress needs little of it. For a
// body of the shape Bitrix24 sends — every key once, no "[]" append, no
// key that is both a value and an array (a and a[b]) — the tree is exactly
// the nesting of the keys, so the event's fields are read from the pairs
// by their full keys and only the data subtree is built. Any other body
// takes the general path. FuzzDecodeDelivery holds both paths to the same
// results.
func DecodeDelivery(contentType string, body []byte, lim Limits) (*Delivery, error) {
	ct, fields, err := decodeFields(contentType, body, lim)
	if err != nil {
		return nil, err
	}
	d := &Delivery{ContentType: ct, body: Body{ContentType: ct, Fields: fields, rawLen: len(body)}}
	if plainKeys(fields) {
		d.Event, err = eventFromPairs(fields)
	} else {
		b := d.body
		b.Tree = buildTree(fields)
		d.Event, err = b.Event()
	}
	if err != nil {
		return nil, err
	}
	d.MessageID = MessageID(d.Event)
	return d, nil
}

// AppendRedacted appends the body without secrets, exactly as
// Body.AppendRedacted does for the same POST.
func (d *Delivery) AppendRedacted(dst []byte) []byte { return d.body.AppendRedacted(dst) }

// plainKeys reports whether the PHP tree of fields is simply the nesting
// of their keys: no key repeats, none has an empty segment ("[]"), and
// none is a path prefix of another (a and a[b], a[b] and a[b][c]), so no
// pair overwrites, appends to or replaces another.
//
// Events as Bitrix24 sends them have a dozen or two pairs: comparing every
// pair with every other is cheapest there (almost every comparison fails
// on the length or one byte). Larger bodies (bot messages have ~80) are
// sorted instead, which puts a repeat next to its twin and lets each key
// find the keys inside its array by binary search.
func plainKeys(fields []Field) bool {
	for i := range fields {
		if strings.Contains(fields[i].Key, "[]") {
			return false
		}
	}
	if len(fields) <= 32 {
		for i := range fields {
			ki := fields[i].Key
			for j := i + 1; j < len(fields); j++ {
				kj := fields[j].Key
				if ki == kj || pathPrefix(ki, kj) || pathPrefix(kj, ki) {
					return false
				}
			}
		}
		return true
	}
	keys := make([]string, len(fields))
	for i := range fields {
		keys[i] = fields[i].Key
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 && keys[i-1] == k {
			return false
		}
		// The first key at or after k+"[" is inside k's array if any is.
		j, _ := slices.BinarySearchFunc(keys[i+1:], k, afterArrayOf)
		if j < len(keys)-i-1 && pathPrefix(k, keys[i+1+j]) {
			return false
		}
	}
	return true
}

// afterArrayOf compares e with k+"[" without building that string.
func afterArrayOf(e, k string) int {
	if len(e) <= len(k) {
		if c := strings.Compare(e, k[:len(e)]); c != 0 {
			return c
		}
		return -1 // e is k or a prefix of it
	}
	if c := strings.Compare(e[:len(k)], k); c != 0 {
		return c
	}
	return int(e[len(k)]) - '['
}

// pathPrefix reports whether key b lies inside key a's array: b is a
// followed by a bracket segment.
func pathPrefix(a, b string) bool {
	return len(b) > len(a) && b[len(a)] == '[' && b[:len(a)] == a
}

// eventFromPairs is Body.Event for a body whose keys passed plainKeys: the
// tree holds each pair at its key's path and nothing else, so a field is
// read by its full key and only the data subtree is built. The checks and
// their order, and so the errors, are those of Body.Event.
func eventFromPairs(fields []Field) (*Event, error) {
	var (
		ev                  Event
		raw, member         string
		dataLeaf            *string
		hasData, dataSecret bool
	)
	for i := range fields {
		f := &fields[i]
		switch f.Key {
		case "event":
			raw = f.Value
		case "event_handler_id":
			ev.HandlerID = f.Value
		case "ts":
			ev.TSRaw = f.Value
		case "auth[member_id]":
			member = f.Value
		case "auth[domain]":
			ev.Domain = f.Value
		case "auth[application_token]":
			ev.ApplicationToken = f.Value
		case "auth[client_endpoint]":
			ev.ClientEndpoint = f.Value
		case "auth[server_endpoint]":
			ev.ServerEndpoint = f.Value
		case "auth[access_token]":
			ev.AccessToken = f.Value
		case "auth[refresh_token]":
			ev.RefreshToken = f.Value
		case "data":
			dataLeaf = &f.Value
		default:
			if hasName(f.Key, "data") {
				hasData = true
				dataSecret = dataSecret || IsSecretKey(f.Key)
			}
		}
	}
	name, err := checkIdentity(raw, member)
	if err != nil {
		return nil, err
	}
	var data map[string]any
	switch {
	case dataLeaf != nil:
		if *dataLeaf != "" && *dataLeaf != "undefined" {
			return nil, errDataString
		}
		data = map[string]any{}
	case hasData:
		t := treeBuilder{root: make(map[string]any, 1)}
		for i := range fields {
			if k := fields[i].Key; hasName(k, "data") && (!dataSecret || !IsSecretKey(k)) {
				t.insert(k, fields[i].Value, fields[i+1:])
			}
		}
		data, _ = t.finish()["data"].(map[string]any)
		if data == nil { // every pair under data was secret
			data = map[string]any{}
		}
	default:
		data = map[string]any{}
	}
	ev.Name, ev.MemberID, ev.Data = name, member, data
	ev.TS = parseTS(ev.TSRaw)
	ev.EntityID = entityID(name, data)
	return &ev, nil
}
