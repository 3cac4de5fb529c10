package tasks_test

import (
	"testing"

	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/change"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/services/tasks"
	"github.com/b24hub/b24hub/services/tasks/internal/consumer/taskevents"
)

// The declaration validates, names exactly the consumers New registers,
// and allows every subject the service publishes.
func TestDeclaration(t *testing.T) {
	consumertest.Declaration(t, tasks.Declaration, []consumer.Spec{taskevents.Spec()},
		eventbus.Change(taskevents.EntityType, "m1", change.SubjectToken("17")),
		eventbus.Outcome(taskevents.Durable, "m1"),
		eventbus.Dead(taskevents.Durable, "m1", taskevents.Events[0]))
}
