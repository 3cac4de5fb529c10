// Package eventbus is the one place where b24hub's NATS contracts are
// defined: subject families, stream definitions, header names and the
// trace-context carrier. Services never spell a subject or header as a string
// literal; they call the functions here.
//
// Subject families (all tokens must be valid NATS subject tokens):
//
//	b24.events.<member_id>.<EVENT>                    raw events (stream B24_EVENTS)
//	b24.changes.<entity_type>.<member_id>.<entity_id> domain changes with diffs (B24_CHANGES)
//	b24.commands.<entity_type>.<member_id>.<action>   commands to write to a portal (B24_COMMANDS)
//	b24.outcomes.<consumer>.<member_id>               one per processing attempt (B24_OUTCOMES)
//	b24.dead.<consumer>.<member_id>.<EVENT>           dead letters (B24_DEAD)
package eventbus
