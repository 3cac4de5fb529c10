package reconcile

import (
	"context"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"google.golang.org/protobuf/proto"
)

// movingClock is the fake portal's clock, set by the test.
type movingClock struct{ t time.Time }

func (c *movingClock) Now() time.Time { return c.t }

// TestRunAgainstFakePortal lists through a real client: only what changed
// after the watermark (less the overlap) is published, over more than one
// page, for deals and tasks alike.
func TestRunAgainstFakePortal(t *testing.T) {
	t0 := time.Date(2026, 9, 17, 10, 0, 0, 0, time.UTC)
	clock := &movingClock{t0}
	p, err := fakeportal.New(fakeportal.Config{Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "code"), MemberID: p.MemberID()}, bitrix.WithHTTPClient(p.Client()))
	if err != nil {
		t.Fatal(err)
	}
	for range 70 {
		p.CreateDeal(map[string]string{"TITLE": "old"}, false)
		p.CreateTask(fakeportal.Task{Title: "old"}, false)
	}
	// 60 of each change an hour later, without a push.
	clock.t = t0.Add(time.Hour)
	for id := int64(11); id <= 70; id++ {
		p.UpdateDeal(id, map[string]string{"TITLE": "new"}, false)
		p.UpdateTask(id, func(tk *fakeportal.Task) { tk.Title = "new" }, false)
	}
	for _, entity := range []string{"deal", "task"} {
		t.Run(entity, func(t *testing.T) {
			m := marks{"m1/" + entity: t0.Add(30 * time.Minute)}
			pub := &publisher{}
			st, err := New(Config{Overlap: time.Minute}, pub, m).Run(context.Background(), Portal{MemberID: "m1"}, c, entity)
			if err != nil {
				t.Fatal(err)
			}
			if st.Published != 60 || !m["m1/"+entity].Equal(t0.Add(time.Hour)) {
				t.Fatalf("stats %+v, watermark %v", st, m["m1/"+entity])
			}
			var env eventsv1.Envelope
			if err := proto.Unmarshal(pub.msgs[0].Data, &env); err != nil {
				t.Fatal(err)
			}
			if env.GetEntityId() != "11" || env.GetSource() != eventsv1.Source_SOURCE_RECONCILE {
				t.Fatalf("first event %v", &env)
			}
		})
	}
}
