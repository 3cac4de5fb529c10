package dealsync_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumertest"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealcommands"
	"github.com/b24hub/b24hub/services/deal-sync/internal/consumer/dealevents"
	"github.com/b24hub/b24hub/services/deal-sync/internal/store"
)

// effects fingerprints everything deal-sync does: the mirror, the changes
// queued for publishing, the own-write registry and the writes the portal saw.
func (e *env) effects(t testing.TB) string {
	rows, err := e.pool.Query(context.Background(), `SELECT deal_id, snapshot_hash, deleted FROM deal_sync.deals ORDER BY deal_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var id int64
		var h string
		var del bool
		_ = rows.Scan(&id, &h, &del)
		out += fmt.Sprintf("%d:%s:%v ", id, h[:8], del)
	}
	var changes, writes int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM deal_sync.outbox`).Scan(&changes)
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM deal_sync.own_writes WHERE status = 'written'`).Scan(&writes)
	return fmt.Sprintf("%s| outbox %d | own writes %d | portal writes %d", out, changes, writes, e.portal.MethodCalls("crm.deal.update"))
}

func TestConformanceDealEvents(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	a := e.portal.CreateDeal(map[string]string{"TITLE": "A"}, false)
	b := e.portal.CreateDeal(map[string]string{"TITLE": "B", "UF_CRM_EXTERNAL_ID": "7"}, false)
	h := dealevents.New(bitrixport.Static{Client: e.client}, store.New(e.pool), nil,
		dealevents.Options{SyncLockField: "UF_CRM_SYNC_LOCK", VolatileFields: []string{"DATE_MODIFY"}, EchoTTL: time.Minute}, quiet())
	consumertest.Run(t, consumertest.Case[*eventsv1.Envelope]{
		Spec: dealevents.Spec(), Decode: consumer.DecodeEnvelope, BatchHandler: h, Server: e.srv,
		Valid: []consumertest.Fixture{
			consumertest.EnvelopeFixture(&eventsv1.Envelope{MessageId: "c-a", MemberId: e.member, Event: "ONCRMDEALADD", EntityId: fmt.Sprint(a)}),
			consumertest.EnvelopeFixture(&eventsv1.Envelope{MessageId: "c-b", MemberId: e.member, Event: "ONCRMDEALUPDATE", EntityId: fmt.Sprint(b)}),
		},
		Effects: e.effects,
	})
}

func TestConformanceDealCommands(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	if err := store.Migrate(context.Background(), e.pool); err != nil {
		t.Fatal(err)
	}
	a := e.portal.CreateDeal(map[string]string{"TITLE": "A"}, false)
	h := dealcommands.New(bitrixport.Static{Client: e.client}, store.New(e.pool), quiet())
	consumertest.Run(t, consumertest.Case[*eventsv1.Command]{
		Spec: dealcommands.Spec(), Decode: consumer.DecodeCommand, Handler: h, Server: e.srv,
		Valid: []consumertest.Fixture{
			consumertest.CommandFixture(&eventsv1.Command{Id: "cmd-a", MemberId: e.member, EntityType: "deal", EntityId: fmt.Sprint(a),
				Action: "update", Fields: map[string]string{"TITLE": `"Renamed"`}, Origin: "test"}),
		},
		Effects: e.effects,
	})
}
