package eventbus

import (
	"fmt"
	"strings"
)

// Subject prefixes. Each family has its own stream.
const (
	EventsPrefix   = "b24.events"
	ChangesPrefix  = "b24.changes"
	CommandsPrefix = "b24.commands"
	OutcomesPrefix = "b24.outcomes"
	DeadPrefix     = "b24.dead"
)

// ControlInstall is a core-NATS request subject (never stored in a stream):
// the ingress sends an ONAPPINSTALL from a portal it does not know yet, body
// and secrets included, and the subscriptions service answers once it has
// verified the install against the portal and registered it. Request:
// InstallRequest JSON; reply: InstallReply JSON.
const ControlInstall = "b24.control.install"

// RawEvent is the subject of a raw event: b24.events.<member_id>.<EVENT>.
func RawEvent(memberID, event string) string {
	return EventsPrefix + "." + memberID + "." + event
}

// RawEventFilter matches the raw events named (e.g. "ONCRMDEALUPDATE") of every portal;
// with no names it matches every raw event.
func RawEventFilter(events ...string) []string {
	if len(events) == 0 {
		return []string{EventsPrefix + ".>"}
	}
	out := make([]string, len(events))
	for i, e := range events {
		out[i] = EventsPrefix + ".*." + e
	}
	return out
}

// Change is the subject of a domain change: b24.changes.<entity_type>.<member_id>.<entity_id>.
func Change(entityType, memberID, entityID string) string {
	return ChangesPrefix + "." + entityType + "." + memberID + "." + entityID
}

// Command is the subject of a command: b24.commands.<entity_type>.<member_id>.<action>.
func Command(entityType, memberID, action string) string {
	return CommandsPrefix + "." + entityType + "." + memberID + "." + action
}

// Outcome is the subject of a consumer outcome: b24.outcomes.<consumer>.<member_id>.
func Outcome(consumer, memberID string) string {
	return OutcomesPrefix + "." + consumer + "." + memberID
}

// Dead is the subject of a dead letter: b24.dead.<consumer>.<member_id>.<EVENT>.
func Dead(consumer, memberID, event string) string {
	return DeadPrefix + "." + consumer + "." + memberID + "." + event
}

// ParseRawEvent splits a raw event subject into member id and event name.
func ParseRawEvent(subject string) (memberID, event string, err error) {
	rest, ok := strings.CutPrefix(subject, EventsPrefix+".")
	if !ok {
		return "", "", fmt.Errorf("eventbus: %q is not a raw event subject", subject)
	}
	memberID, event, ok = strings.Cut(rest, ".")
	if !ok || memberID == "" || event == "" || strings.Contains(event, ".") {
		return "", "", fmt.Errorf("eventbus: %q is not a raw event subject", subject)
	}
	return memberID, event, nil
}

// ValidToken reports whether s can stand as one subject token: non-empty,
// at most 128 bytes, only letters, digits, '_' and '-'. Portal ids, event
// names and consumer names must pass it before they go into a subject.
func ValidToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
