package eventbus

// Header names carried on b24hub messages. Nats-Msg-Id is JetStream's
// de-duplication header; traceparent/tracestate are written by the W3C
// propagator through HeaderCarrier.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderSource      = "B24-Source" // push, offline, reconcile, replay, onprem
	HeaderMemberID    = "B24-Member-Id"
	HeaderEvent       = "B24-Event"
	HeaderEntityID    = "B24-Entity-Id"
	HeaderContentType = "Content-Type" // of the payload: ContentTypeProtobuf

	// Dead-letter headers say why, where and how many times.
	HeaderDeadReason     = "B24-Dead-Reason"     // permanent, undecodable, max_deliveries
	HeaderDeadError      = "B24-Dead-Error"      // the last error text
	HeaderDeadConsumer   = "B24-Dead-Consumer"   // durable name
	HeaderDeadDeliveries = "B24-Dead-Deliveries" // delivery count at dead-lettering
	HeaderDeadSubject    = "B24-Dead-Subject"    // the original subject
	HeaderDeadStream     = "B24-Dead-Stream"     // the original stream
	HeaderDeadStreamSeq  = "B24-Dead-Stream-Seq" // the original stream sequence
	HeaderOriginalMsgID  = "B24-Original-Msg-Id" // the original Nats-Msg-Id
)

// ContentTypeProtobuf marks payloads that are binary protobuf messages from
// github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1.
const ContentTypeProtobuf = "application/protobuf"

// Sources of raw events, as sent in HeaderSource.
const (
	SourcePush      = "push"
	SourceOffline   = "offline"
	SourceReconcile = "reconcile"
	SourceReplay    = "replay"
	// SourceOnPrem is a PHP-level event from an on-premise Bitrix24
	// installation, delivered by its b24hub.forwarder module.
	SourceOnPrem = "onprem"
)
