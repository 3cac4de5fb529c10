package b24event

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
)

// msgIDVersion prefixes the hash input. Changing the input format changes
// every id, which defeats JetStream deduplication for one dedup window
// across the deploy; bump it deliberately.
const msgIDVersion = "b24event/msgid/v1\x00"

// MessageID returns a deterministic id for an event, meant for the
// Nats-Msg-Id header: the same delivery (a retry, a duplicate POST, the same
// event replayed from the raw body) gets the same id, and any difference in
// portal, event, handler, ts or data gives a different one.
//
// It is the first 32 hex characters (128 bits) of the SHA-256 of the member
// id, event name, handler id, ts as sent, and a canonical encoding of Data
// with sorted keys. Secret keys in Data are skipped, and so are maps that
// hold nothing else, so whether credentials were present or already
// redacted does not change the id. The encoding is length-prefixed, so no
// two different inputs share an encoding. It returns "" for a nil event.
//
// Bitrix24 events carry only an id and a one-second ts, so two changes of
// the same entity within one second by the same handler get the same id;
// consumers must fetch current state rather than rely on one event per
// change.
func MessageID(ev *Event) string {
	if ev == nil {
		return ""
	}
	var buf [512]byte
	b := append(buf[:0], msgIDVersion...)
	b = appendLP(b, ev.MemberID)
	b = appendLP(b, ev.Name)
	b = appendLP(b, ev.HandlerID)
	b = appendLP(b, ev.TSRaw)
	b = appendCanonical(b, ev.Data)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// appendLP appends s with its length prefix.
func appendLP(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendCanonical appends 'm', the non-secret entries of m sorted by key,
// and 'e'. Each entry is the length-prefixed key and a tagged value:
// 's'+string, a nested map, or, for values Decode never produces (a
// hand-made Event), 'x'+their %T:%v rendering.
func appendCanonical(b []byte, m map[string]any) []byte {
	var kbuf [16]string
	keys := kbuf[:0]
	for k := range m {
		if !IsSecretKey(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b = append(b, 'm')
	for _, k := range keys {
		mark := len(b)
		b = appendLP(b, k)
		switch v := m[k].(type) {
		case string:
			b = append(b, 's')
			b = appendLP(b, v)
		case map[string]any:
			start := len(b)
			b = appendCanonical(b, v)
			if len(b) == start+2 { // "me": nothing but secrets, or empty
				b = b[:mark]
			}
		default:
			b = append(b, 'x')
			b = appendLP(b, fmt.Sprintf("%T:%v", v, v))
		}
	}
	return append(b, 'e')
}
