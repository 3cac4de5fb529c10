// Package b24event decodes the HTTP bodies Bitrix24 POSTs to an event
// handler, gives them a typed view, strips their secrets and derives a
// deterministic message id for JetStream deduplication.
//
// It sits on the ingress hot path (every POST) and parses untrusted input
// before the application token has been checked, so it is written to be
// cheap (one pass, few allocations) and to fail closed: every input either
// decodes within [Limits] or returns an error that matches exactly one of
// the sentinel errors with [errors.Is]. It never panics on any input. The
// ingress calls [DecodeDelivery], which gives what [Decode], [Body.Event]
// and [MessageID] give but builds the tree only when the body's shape needs
// it.
//
// # Wire format
//
// Bitrix24 sends application/x-www-form-urlencoded bodies in PHP bracket
// notation (data[FIELDS][ID]=759). Decode rebuilds the PHP array as a tree of
// map[string]any whose leaves are all strings, because PHP sends every
// scalar as a string and the numeric keys of PHP arrays are map keys, not
// list positions (data[BOT][567][...], MENTIONED_LIST[567]=567). PHP's
// $_POST semantics are followed where they matter:
//
//   - a repeated key: the last pair wins;
//   - a[]=x appends with the next integer index (largest integer key + 1,
//     0 for a fresh array), like PHP 8.3; an append to an array whose
//     largest key is already MaxInt64 is dropped, as PHP drops it;
//   - a key that is a string in one pair and an array in a later one: the
//     later pair replaces the earlier value, whichever kind it is (PHP does
//     the same);
//   - the literal "undefined" that task events send stays the string
//     "undefined".
//
// Deviations from PHP, chosen because PHP's leniency would hide broken or
// hostile input: invalid percent-encoding, unbalanced brackets, text after a
// closing bracket and an empty name are [ErrMalformed] instead of being
// silently repaired; dots and spaces in names are not mangled to "_".
//
// JSON bodies (application/json) are accepted defensively. A JSON document is
// flattened exactly as PHP's http_build_query would flatten the same array,
// and the tree is built from that flattened form, so a JSON body and its form
// equivalent decode to the same tree: numbers keep their literal text, true
// and false become "1" and "0", null and empty objects/arrays produce no
// pair, and arrays become maps keyed "0", "1", ...
//
// # Secrets
//
// A key is secret when any of its segments ends in "token", contains
// "secret" or "password", or is AUTH_ID, REFRESH_ID or APP_SID (all
// case-insensitive), see [IsSecretKey]. This covers auth[access_token],
// auth[refresh_token], auth[application_token] (the shared secret: verify it
// before redacting, it must never reach the stream), client_secret, the
// per-bot credentials of ONIMBOT* events at any depth and the credentials a
// placement or embedded application call carries.
// [Body.Redacted] and [Body.RedactedTree] drop them; [Event.Data] and
// [MessageID] never see them. Error messages may quote keys (truncated) but
// never values, so they are safe to log.
//
// # Message ids
//
// [MessageID] is a pure function of the portal, event, handler, ts and the
// redacted data, so a duplicate delivery of the same POST gets the same
// Nats-Msg-Id and JetStream drops it inside its dedup window. The hash
// input format is versioned; changing it changes every id, which breaks
// deduplication across a deploy for one dedup window.
package b24event
