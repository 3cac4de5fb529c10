package telephony_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/telephony"
	"github.com/b24hub/b24hub/services/telephony/internal/consumer/callend"
)

// The declaration validates, names exactly the consumers New registers,
// and allows every subject the service publishes.
func TestDeclaration(t *testing.T) {
	consumertest.Declaration(t, telephony.Declaration, []consumer.Spec{callend.Spec()},
		eventbus.Change(callend.EntityType, "m1", change.SubjectToken("call.1/2")),
		eventbus.Outcome(callend.Durable, "m1"),
		eventbus.Dead(callend.Durable, "m1", callend.Event))
}
