package dealsync_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	dealsync "github.com/b24hub/b24hub/services/deal-sync"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"
)

func TestMirrorsDealsAndPublishesDiffs(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)

	id := e.portal.CreateDeal(map[string]string{"TITLE": "Boiler", "OPPORTUNITY": "100.00", "UF_CRM_EXTERNAL_ID": "x-1"}, true)
	e.eventually("created change", func() bool { return len(e.changesFor(id)) == 1 })
	c := e.changesFor(id)[0]
	if c.Kind != eventsv1.ChangeKind_CHANGE_KIND_CREATED || c.EntityType != "deal" || c.MemberId != e.member || c.SnapshotHash == "" {
		t.Errorf("created change %+v", c)
	}
	row, ok := e.mirror(id)
	if !ok || row.title != "Boiler" || row.fields["UF_CRM_EXTERNAL_ID"] != "x-1" {
		t.Errorf("mirror after create: %+v %v", row, ok)
	}

	e.portal.UpdateDeal(id, map[string]string{"STAGE_ID": "WON", "UF_CRM_EXTERNAL_ID": "x-2"}, true)
	e.eventually("updated change", func() bool { return len(e.changesFor(id)) == 2 })
	got := map[string]string{}
	for _, fc := range e.changesFor(id)[1].Changes {
		got[fc.Field] = fc.OldJson + "->" + fc.NewJson
	}
	for f, want := range map[string]string{"STAGE_ID": `"NEW"->"WON"`, "UF_CRM_EXTERNAL_ID": `"x-1"->"x-2"`} {
		if got[f] != want {
			t.Errorf("diff %s = %q, want %q (all: %v)", f, got[f], want, got)
		}
	}
	if _, ok := got["TITLE"]; ok {
		t.Error("unchanged TITLE in the diff")
	}

	// An event whose fetched state equals the snapshot is a no-op.
	e.portal.Fire("ONCRMDEALUPDATE", nil, 1) // a stray event without id is dead-lettered, not retried
	e.idle()
	before := len(e.changesFor(id))
	e.publishRaw(id, "ONCRMDEALUPDATE", "replayed-1")
	e.idle()
	if n := len(e.changesFor(id)); n != before {
		t.Errorf("a no-op event published a change (%d → %d)", before, n)
	}

	e.portal.DeleteDeal(id, true)
	e.eventually("deleted change", func() bool {
		cs := e.changesFor(id)
		return len(cs) > 0 && cs[len(cs)-1].Kind == eventsv1.ChangeKind_CHANGE_KIND_DELETED
	})
	if row, _ := e.mirror(id); !row.deleted {
		t.Error("mirror not marked deleted")
	}
}

// TestEchoLoopStaysClosed runs an external system that turns every domain
// change into a command back, the classic ping-pong: one command must cost
// exactly one write, and its echo must publish nothing.
func TestEchoLoopStaysClosed(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)
	id := e.portal.CreateDeal(map[string]string{"TITLE": "Loop"}, true)
	e.eventually("mirrored", func() bool { _, ok := e.mirror(id); return ok })
	e.idle()

	// The external system mirrors every change back as a command; answered
	// counts the changes it has answered (its command stored).
	var n int
	var answered atomic.Int32
	baseline := len(e.changesFor(id))
	sub, err := e.nc.Subscribe("b24.changes.deal.>", func(m *nats.Msg) {
		defer answered.Add(1)
		dc := &eventsv1.DomainChange{}
		if err := proto.Unmarshal(m.Data, dc); err != nil {
			return
		}
		fields := map[string]string{}
		for _, c := range dc.Changes {
			if c.NewJson != "" {
				fields[c.Field] = c.NewJson
			}
		}
		n++
		e.publishCommand(&eventsv1.Command{Id: fmt.Sprintf("echo-back-%d", n), MemberId: dc.MemberId, EntityType: "deal",
			EntityId: dc.EntityId, Action: "update", Fields: fields, Origin: "crm-x"})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	writes := e.portal.MethodCalls("crm.deal.update")
	changes := len(e.changesFor(id))
	e.publishCommand(&eventsv1.Command{Id: "cmd-1", MemberId: e.member, EntityType: "deal", EntityId: fmt.Sprint(id),
		Action: "update", Fields: map[string]string{"TITLE": `"From CRM X"`, "OPPORTUNITY": `250`}, Origin: "crm-x"})
	e.eventually("the write", func() bool { d, _ := e.portal.Deal(id); return d["TITLE"] == "From CRM X" })
	e.eventually("the echo skipped", func() bool {
		return e.outcomesWith(eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED, "echo of own write") == 1
	})
	// Every change has been answered by the external system and deal-sync
	// has settled what the answers started: a second write would have
	// been made by then.
	e.idle()
	e.eventually("every change answered", func() bool { return int(answered.Load()) >= len(e.changesFor(id))-baseline })
	e.idle()
	if got := e.portal.MethodCalls("crm.deal.update") - writes; got != 1 {
		t.Errorf("%d writes for one command, want 1", got)
	}
	if got := len(e.changesFor(id)) - changes; got != 0 {
		t.Errorf("the echo published %d changes, want 0", got)
	}
	if row, _ := e.mirror(id); row.title != "From CRM X" {
		t.Errorf("mirror title %q: the echo must still update the mirror", row.title)
	}

	// The same command again (a redelivery or a retry by the sender) writes nothing.
	e.publishCommandWithMsgID(&eventsv1.Command{Id: "cmd-1", MemberId: e.member, EntityType: "deal", EntityId: fmt.Sprint(id),
		Action: "update", Fields: map[string]string{"TITLE": `"From CRM X"`}}, "cmd-1-resent")
	// A command with values the mirror already has writes nothing either.
	e.publishCommand(&eventsv1.Command{Id: "cmd-2", MemberId: e.member, EntityType: "deal", EntityId: fmt.Sprint(id),
		Action: "update", Fields: map[string]string{"TITLE": `"From CRM X"`, "OPPORTUNITY": `"250.00"`}})
	e.idle()
	if got := e.portal.MethodCalls("crm.deal.update") - writes; got != 1 {
		t.Errorf("%d writes after a duplicate and a no-op command, want 1", got)
	}

	// A real user edit right after is not mistaken for an echo.
	e.portal.UpdateDeal(id, map[string]string{"TITLE": "Edited by a human"}, true)
	e.eventually("the human edit published", func() bool { return len(e.changesFor(id)) > changes })
}

func TestSyncLockHonouredAndClearedOnce(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	e.start(fastConfig(), e.client)
	id := e.portal.CreateDeal(map[string]string{"TITLE": "Locked"}, true)
	e.eventually("mirrored", func() bool { _, ok := e.mirror(id); return ok })
	e.idle()
	writes := e.portal.MethodCalls("crm.deal.update")
	changes := len(e.changesFor(id))

	// Another integration writes with the seed's sync-lock flag set.
	e.portal.UpdateDeal(id, map[string]string{"TITLE": "Synced in", "UF_CRM_SYNC_LOCK": "Y"}, true)
	e.eventually("flag cleared", func() bool { d, _ := e.portal.Deal(id); return d["UF_CRM_SYNC_LOCK"] == "" })
	e.idle() // a pass in which nothing moved: a second write would show
	if got := e.portal.MethodCalls("crm.deal.update") - writes; got != 1 {
		t.Errorf("%d writes, want exactly 1 (the clear)", got)
	}
	if got := len(e.changesFor(id)) - changes; got != 0 {
		t.Errorf("%d changes published for a sync-locked write, want 0", got)
	}
	if row, _ := e.mirror(id); row.title != "Synced in" {
		t.Errorf("mirror title %q", row.title)
	}
}

// TestRESTOutageWaitsWithoutDeadLetters: a portal answering 500 to every
// call is a dependency down, not the event's fault. deal-sync keeps the
// event and probes the portal many times more often than its delivery
// budget (MaxDeliver 3) would allow deliveries, reports one RETRY outcome,
// dead-letters nothing, and once the portal answers the event is done at
// its first delivery.
func TestRESTOutageWaitsWithoutDeadLetters(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	cfg := fastConfig()
	cfg.Consumer.ProbeInterval, cfg.Consumer.ProbeMaxInterval = 10*time.Millisecond, 50*time.Millisecond
	e.start(cfg, e.newClient(bitrixConfigNoRetry()))
	id := e.portal.CreateDeal(map[string]string{"TITLE": "Unlucky"}, false)
	e.portal.ResetStats()
	e.portal.SetFaults(fakeportal.Faults{ServerErrorRate: 1})
	e.publishRaw(id, "ONCRMDEALUPDATE", "outage-1")
	e.eventually("ten calls refused", func() bool { return e.portal.Stats().InjectedFaults >= 10 })
	e.mu.Lock()
	dead := len(e.dead)
	e.mu.Unlock()
	if dead != 0 {
		t.Fatalf("%d dead letters during the outage", dead)
	}
	if got := e.outcomesWith(eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY, ""); got != 1 {
		t.Errorf("%d RETRY outcomes while waiting, want 1 (one per delivery)", got)
	}
	if _, ok := e.mirror(id); ok {
		t.Error("mirrored during an outage")
	}
	e.portal.SetFaults(fakeportal.Faults{})
	e.eventually("mirrored after the outage", func() bool { _, ok := e.mirror(id); return ok })
	e.eventually("done", func() bool { return e.outcomesWith(eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, "") == 1 })
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.outcomes {
		if o.Attempt != 1 {
			t.Errorf("outcome %s at delivery %d: the outage spent a delivery", o.Status, o.Attempt)
		}
	}
	if len(e.dead) != 0 {
		t.Errorf("%d dead letters", len(e.dead))
	}
}

// byMember serves each portal's own REST client.
type byMember map[string]*bitrix.Client

func (b byMember) ClientFor(_ context.Context, member string) (*bitrix.Client, error) {
	if c, ok := b[member]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("no client for portal %s", member)
}

// TestOnePortalsOutageHoldsOnlyItsEvents: deal-sync serves two portals and
// one answers 500 to every call. Only that portal's event waits (held,
// probed, no delivery spent); the other portal's deal, updated during the
// outage, is mirrored meanwhile. Before, the whole consumer paused and the
// other portal waited for the outage too. Once the first portal answers,
// its event is done at its first delivery; nothing is dead-lettered.
func TestOnePortalsOutageHoldsOnlyItsEvents(t *testing.T) {
	e := newEnv(t, fakeportal.Config{})
	other, err := fakeportal.New(fakeportal.Config{MemberID: "0a1b2c3d4e5f60718293a4b5c6d7e8f9"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	if other.MemberID() == e.member {
		t.Fatal("both fake portals have one member_id")
	}
	cfg := fastConfig()
	cfg.Consumer.ProbeInterval, cfg.Consumer.ProbeMaxInterval = 10*time.Millisecond, 50*time.Millisecond
	oc := bitrixConfigNoRetry()
	oc.WebhookURL, oc.MemberID = other.AddWebhook(1, "other"), other.MemberID()
	otherClient, err := bitrix.New(oc, bitrix.WithHTTPClient(other.Client()), bitrix.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	e.startWith(cfg, byMember{e.member: e.newClient(bitrixConfigNoRetry()), other.MemberID(): otherClient})

	down := e.portal.CreateDeal(map[string]string{"TITLE": "Unlucky"}, false)
	up := other.CreateDeal(map[string]string{"TITLE": "Lucky"}, false)
	e.portal.ResetStats()
	e.portal.SetFaults(fakeportal.Faults{ServerErrorRate: 1})
	e.publishRaw(down, "ONCRMDEALUPDATE", "down-1")
	// Forty probes (at most 50 ms apart) outlast the reader's pull that
	// was under way when the outage began (up to 1 s): from then on a
	// paused consumer would fetch nothing.
	e.eventually("forty calls refused", func() bool { return e.portal.Stats().InjectedFaults >= 40 })
	e.publishRawOf(other.MemberID(), up, "ONCRMDEALUPDATE", "up-1")
	e.eventually("the other portal's deal mirrored during the outage", func() bool {
		r, ok := e.mirrorOf(other.MemberID(), up)
		return ok && r.title == "Lucky"
	})
	if _, ok := e.mirror(down); ok {
		t.Error("mirrored during its portal's outage")
	}
	e.portal.SetFaults(fakeportal.Faults{})
	e.eventually("mirrored after the outage", func() bool { _, ok := e.mirror(down); return ok })
	e.eventually("both done", func() bool { return e.outcomesWith(eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, "") == 2 })
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, o := range e.outcomes {
		if o.Attempt != 1 {
			t.Errorf("outcome %s of %s at delivery %d: the outage spent a delivery", o.Status, o.EventId, o.Attempt)
		}
	}
	if len(e.dead) != 0 {
		t.Errorf("%d dead letters", len(e.dead))
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := map[string]string{
		"B24HUB_DEALSYNC_SYNC_LOCK_FIELD": "-", "B24HUB_DEALSYNC_BACKOFF": "1s,2s", "B24HUB_DEALSYNC_ECHO_TTL": "1m",
		"B24HUB_DEALSYNC_VOLATILE_FIELDS": "DATE_MODIFY", "B24HUB_DEALSYNC_COMMANDS_CONCURRENCY": "2",
	}
	cfg, err := dealsync.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SyncLockField != "" || len(cfg.Consumer.Backoff) != 2 || cfg.EchoTTL != time.Minute ||
		len(cfg.VolatileFields) != 1 || cfg.Commands.Concurrency != 2 {
		t.Errorf("config %+v", cfg)
	}
	def, _ := dealsync.ConfigFromEnv(func(string) string { return "" })
	if def.SyncLockField != "UF_CRM_SYNC_LOCK" || len(def.VolatileFields) != 2 || def.EchoTTL != 10*time.Minute {
		t.Errorf("defaults %+v", def)
	}
	if _, err := dealsync.ConfigFromEnv(func(k string) string {
		return map[string]string{"B24HUB_DEALSYNC_ECHO_TTL": "soon"}[k]
	}); err == nil {
		t.Error("bad duration accepted")
	}
}
