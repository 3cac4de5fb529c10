package bitrix_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/b24hub/b24hub/libs/bitrix/allowlist"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// The shared suite: the client against the fake portal. Each behaviour is
// checked from both sides, what the client returns and what the portal saw.

func TestDeals(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	for i := range 130 {
		p.CreateDeal(map[string]string{"TITLE": "Deal " + strconv.Itoa(i+1), "OPPORTUNITY": "100.50", "UF_CRM_EXTERNAL_ID": "ext-" + strconv.Itoa(i+1)}, false)
	}

	t.Run("get", func(t *testing.T) {
		d, err := c.GetDeal(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID != 7 || d.Title != "Deal 7" || d.Opportunity != "100.50" || d.Field("UF_CRM_EXTERNAL_ID") != "ext-7" || d.DateModify.IsZero() {
			t.Fatalf("deal %+v", d)
		}
		// Raw is the same object as Fields (what a mirror stores as is).
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(d.Raw, &raw); err != nil {
			t.Fatalf("Raw %q: %v", d.Raw, err)
		}
		if len(raw) != len(d.Fields) || string(raw["UF_CRM_EXTERNAL_ID"]) != string(d.Fields["UF_CRM_EXTERNAL_ID"]) || string(raw["TITLE"]) != `"Deal 7"` {
			t.Fatalf("Raw %s, Fields %v", d.Raw, d.Fields)
		}
	})
	t.Run("get missing is KindNotFound", func(t *testing.T) {
		_, err := c.GetDeal(ctx, 9999)
		if !errors.Is(err, bitrix.KindNotFound) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("walk uses start=-1 and ID paging", func(t *testing.T) {
		before := p.MethodCalls("crm.deal.list")
		var ids []bitrix.ID
		for d, err := range c.ListDeals(ctx, bitrix.DealQuery{}) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, d.ID)
		}
		if len(ids) != 130 || ids[0] != 1 || ids[129] != 130 || !slices.IsSorted(ids) {
			t.Fatalf("walked %d deals", len(ids))
		}
		if n := p.MethodCalls("crm.deal.list") - before; n != 3 {
			t.Fatalf("%d list requests, want 3", n)
		}
	})
	t.Run("walk with a filter and early stop", func(t *testing.T) {
		n := 0
		for d, err := range c.ListDeals(ctx, bitrix.DealQuery{Filter: map[string]any{">=ID": 100}, Select: []string{"TITLE"}}) {
			if err != nil {
				t.Fatal(err)
			}
			if d.ID < 100 || d.Title == "" || d.Fields["OPPORTUNITY"] != nil {
				t.Fatalf("row %+v", d)
			}
			if n++; n == 10 {
				break
			}
		}
	})
	t.Run("list pages with start/next", func(t *testing.T) {
		n := 0
		for _, err := range c.List(ctx, "crm.deal.list", map[string]any{"select": []string{"ID"}}) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 130 {
			t.Fatalf("%d rows", n)
		}
	})
	t.Run("update", func(t *testing.T) {
		no := false
		if err := c.UpdateDeal(ctx, 3, map[string]any{"TITLE": "Renamed", "UF_CRM_SYNC_LOCK": "1"}, bitrix.DealUpdate{RegisterSonetEvent: &no}); err != nil {
			t.Fatal(err)
		}
		if d, _ := p.Deal(3); d["TITLE"] != "Renamed" || d["UF_CRM_SYNC_LOCK"] != "1" {
			t.Fatalf("portal has %v", d)
		}
		err := c.UpdateDeal(ctx, 9999, map[string]any{"TITLE": "x"}, bitrix.DealUpdate{})
		if !errors.Is(err, bitrix.KindNotFound) {
			t.Fatalf("update missing: %v", err)
		}
	})
	t.Run("fields", func(t *testing.T) {
		f, err := c.DealFields(ctx)
		if err != nil || f["UF_CRM_SYNC_LOCK"].Type != "boolean" || !f["ID"].IsReadOnly {
			t.Fatalf("%v %v", f["UF_CRM_SYNC_LOCK"], err)
		}
	})
}

func TestGetDealsBatchesFiftyPerRequest(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	ids := make([]bitrix.ID, 0, 1001)
	for i := range 1000 {
		ids = append(ids, bitrix.ID(p.CreateDeal(map[string]string{"TITLE": strconv.Itoa(i)}, false)))
	}
	ids = append(ids, 5000, 7) // one missing, one duplicate
	p.ResetStats()
	deals, errs, err := c.GetDeals(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(deals) != 1000 || len(errs) != 1 || !errors.Is(errs[5000], bitrix.KindNotFound) {
		t.Fatalf("%d deals, errs %v", len(deals), errs)
	}
	s := p.Stats()
	if s.Requests != 21 || s.QueryLimitExceeded != 0 || s.BatchCommands != 1001 {
		t.Fatalf("portal saw %+v", s)
	}
}

func TestBatchReferencesAndHalt(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	p.CreateDeal(map[string]string{"TITLE": "source"}, false)
	res, err := c.Batch(ctx, true,
		bitrix.BatchCommand{Key: "src", Method: "crm.deal.get", Params: map[string]any{"id": 1}},
		bitrix.BatchCommand{Key: "upd", Method: "crm.deal.update", Params: map[string]any{
			"id": bitrix.Ref("src", "ID"), "fields": map[string]any{"TITLE": "copy of " + bitrix.Ref("src", "TITLE")}}},
		bitrix.BatchCommand{Key: "bad", Method: "crm.deal.get", Params: map[string]any{"id": 404}},
		bitrix.BatchCommand{Key: "after", Method: "crm.deal.get", Params: map[string]any{"id": 1}},
	)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Deal(1); d["TITLE"] != "copy of source" {
		t.Fatalf("reference: %v", d["TITLE"])
	}
	if !errors.Is(res.Errors["bad"], bitrix.KindNotFound) || res.Errors["bad"].Method != "crm.deal.get" {
		t.Fatalf("per-command error %v", res.Errors["bad"])
	}
	if sk := res.Skipped(); !slices.Equal(sk, []string{"after"}) {
		t.Fatalf("halt skipped %v", sk)
	}
	var many []bitrix.BatchCommand
	for i := range 51 {
		many = append(many, bitrix.BatchCommand{Key: strconv.Itoa(i), Method: "app.info"})
	}
	if _, err := c.Batch(ctx, false, many...); !errors.Is(err, bitrix.KindPermanent) {
		t.Fatalf("51 commands: %v", err)
	}
}

func TestQueryLimitExceededIsRetried(t *testing.T) {
	ctx := context.Background()
	clock := bitrix.NewVirtualClock()
	// The portal is smaller than the client believes (another app on the
	// same IP, §4.5): the client must still finish every call.
	p := newFake(t, fakeportal.Config{Rate: 2, Burst: 5, Clock: clock})
	c := webhookClient(t, p, bitrix.Config{Rate: bitrix.Rate{PerSecond: 50, Burst: 50}}, bitrix.WithClock(clock))
	id := bitrix.ID(p.CreateDeal(nil, false))
	for i := range 20 {
		if _, err := c.GetDeal(ctx, id); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if s := p.Stats(); s.QueryLimitExceeded == 0 || s.MaxLevel > 5 {
		t.Fatalf("portal saw %+v", s)
	}
}

func TestOverloadIsNotRetried(t *testing.T) {
	// The fake has no overload switch, so this is covered by the scripted
	// tests (TestRetryRules); here: a 5xx page on a write is not repeated.
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{}, bitrix.WithClock(bitrix.NewVirtualClock()))
	id := bitrix.ID(p.CreateDeal(nil, false))
	p.SetFaults(fakeportal.Faults{HTMLRate: 1})
	p.ResetStats()
	err := c.UpdateDeal(ctx, id, map[string]any{"TITLE": "x"}, bitrix.DealUpdate{})
	var e *bitrix.Error
	if !errors.As(err, &e) || e.Kind() != bitrix.KindTransient || !e.Ambiguous || bitrix.Retryable(err) || e.Status != 502 {
		t.Fatalf("write under HTML fault: %v", err)
	}
	if n := p.Stats().Requests; n != 1 {
		t.Fatalf("write sent %d times", n)
	}
	p.ResetStats()
	if _, err := c.GetDeal(ctx, id); !errors.Is(err, bitrix.KindTransient) {
		t.Fatalf("read: %v", err)
	}
	if n := p.Stats().Requests; n != 4 {
		t.Fatalf("read sent %d times, want 1+3 retries", n)
	}
	p.SetFaults(fakeportal.Faults{HTMLRate: 0.5})
	for range 10 {
		if _, err := c.GetDeal(ctx, id); err != nil && !errors.Is(err, bitrix.KindTransient) {
			t.Fatalf("read under 50%% faults: %v", err)
		}
	}
}

func TestOperationTimeLimitPausesOneMethod(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	id := bitrix.ID(p.CreateDeal(nil, false))
	until := time.Now().Add(2 * time.Minute).Truncate(time.Second)
	p.BlockMethod("crm.deal.update", until)
	err := c.UpdateDeal(ctx, id, map[string]any{"TITLE": "x"}, bitrix.DealUpdate{})
	var e *bitrix.Error
	if !errors.As(err, &e) || e.Kind() != bitrix.KindOperationLimit || !e.ResetAt.Equal(until) || !bitrix.Retryable(err) {
		t.Fatalf("got %v", err)
	}
	before := p.Stats().Requests
	if err := c.UpdateDeal(ctx, id, map[string]any{"TITLE": "x"}, bitrix.DealUpdate{}); !errors.Is(err, bitrix.KindOperationLimit) {
		t.Fatalf("second: %v", err)
	}
	if p.Stats().Requests != before {
		t.Fatal("paused method still reached the portal")
	}
	if _, err := c.GetDeal(ctx, id); err != nil {
		t.Fatalf("other method: %v", err)
	}
}

func TestPortalRename(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{Domain: "acme.bitrix24.test"})
	var moved []string
	// The fake portal answers over http: its new domain is configured as an
	// on-premise host would be.
	hosts, _ := allowlist.New([]string{"acme-renamed.bitrix24.test"})
	c := webhookClient(t, p, bitrix.Config{}, bitrix.WithAllowedHosts(hosts),
		bitrix.WithRenameHook(func(_ context.Context, o, n string) { moved = append(moved, o+">"+n) }))
	id := bitrix.ID(p.CreateDeal(map[string]string{"TITLE": "x"}, false))
	p.Rename("acme-renamed.bitrix24.test")
	if err := c.UpdateDeal(ctx, id, map[string]any{"TITLE": "after rename"}, bitrix.DealUpdate{}); err != nil {
		t.Fatal(err)
	}
	if d, _ := p.Deal(int64(id)); d["TITLE"] != "after rename" {
		t.Fatal("the re-POST lost its body")
	}
	if dom, _ := c.Domain(ctx); dom != "acme-renamed.bitrix24.test" || !slices.Equal(moved, []string{"acme.bitrix24.test>acme-renamed.bitrix24.test"}) {
		t.Fatalf("domain %s, hook %v", dom, moved)
	}
}

func TestTasks(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	id := p.CreateTask(fakeportal.Task{Title: "Call back", UfCrmTask: []string{"D_12", "C_3"}}, false)
	p.AddChecklistItem(id, 0, "Checklist 1", false)
	p.AddChecklistItem(id, 1, "step one", true)
	tk, err := c.GetTask(ctx, bitrix.ID(id), "ID", "TITLE", "UF_CRM_TASK")
	if err != nil || tk.Title != "Call back" || !slices.Equal(tk.UfCrmTask, []string{"D_12", "C_3"}) {
		t.Fatalf("%+v %v", tk, err)
	}
	plain, err := c.GetTask(ctx, bitrix.ID(id))
	if err != nil || plain.UfCrmTask != nil || plain.ResponsibleID != 1 {
		t.Fatalf("default select: %+v %v", plain, err)
	}
	if _, err := c.GetTask(ctx, 404); !errors.Is(err, bitrix.KindNotFound) {
		t.Fatalf("missing task: %v", err)
	}
	items, err := c.TaskChecklist(ctx, bitrix.ID(id))
	if err != nil || len(items) != 2 || items[0].ParentID != 0 || items[1].ParentID != 1 || !bool(items[1].IsComplete) {
		t.Fatalf("checklist %+v %v", items, err)
	}
}

// TestListTasksWalksEveryPage lists more than a page of tasks from the fake
// with start=-1 and ">ID" paging, and finds the one changed since a time.
func TestListTasksWalksEveryPage(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	c := webhookClient(t, p, bitrix.Config{})
	for i := range 120 {
		p.CreateTask(fakeportal.Task{Title: "task " + strconv.Itoa(i+1)}, false)
	}
	var ids []bitrix.ID
	for tk, err := range c.ListTasks(ctx, bitrix.TaskQuery{}) {
		if err != nil {
			t.Fatal(err)
		}
		if tk.Title != "task "+tk.ID.String() || tk.ChangedDate == "" {
			t.Fatalf("row %+v", tk)
		}
		ids = append(ids, tk.ID)
	}
	if len(ids) != 120 || ids[0] != 1 || ids[119] != 120 {
		t.Fatalf("%d tasks, first %v", len(ids), ids[:min(3, len(ids))])
	}
	if n := p.MethodCalls("tasks.task.list"); n != 3 {
		t.Errorf("%d calls for 120 tasks, want 3", n)
	}
	n := 0
	for _, err := range c.ListTasks(ctx, bitrix.TaskQuery{Filter: map[string]any{">ID": 100}, Select: []string{"ID"}}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 20 {
		t.Fatalf("%d tasks after ID 100, want 20", n)
	}
}

func TestCallRecordingAppearsLater(t *testing.T) {
	ctx := context.Background()
	clock := &settable{t: time.Date(2026, 3, 11, 17, 28, 46, 0, time.UTC)}
	p := newFake(t, fakeportal.Config{Clock: clock, RecordingDelay: 30 * time.Second})
	c := webhookClient(t, p, bitrix.Config{})
	callID := p.EndCall(fakeportal.Call{PhoneNumber: "+499061234567", Duration: 65, FailedCode: "603-S", FailedReason: "Declined"}, false)
	rec, err := c.FindCall(ctx, callID)
	if err != nil || rec.RecordFileID != 0 || rec.CallFailedCode != "603-S" || rec.CallDuration != 65 {
		t.Fatalf("before the delay: %+v %v", rec, err)
	}
	clock.add(31 * time.Second)
	rec, err = c.FindCall(ctx, callID)
	if err != nil || rec.RecordFileID == 0 {
		t.Fatalf("after the delay: %+v %v", rec, err)
	}
	f, err := c.GetDiskFile(ctx, rec.RecordFileID)
	if err != nil || f.DownloadURL == "" || f.Size == 0 {
		t.Fatalf("file %+v %v", f, err)
	}
	resp, err := p.Client().Get(f.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if int64(len(body)) != int64(f.Size) {
		t.Fatalf("downloaded %d bytes, size says %d", len(body), f.Size)
	}
	if _, err := c.FindCall(ctx, "nope"); !errors.Is(err, bitrix.KindNotFound) {
		t.Fatalf("missing call: %v", err)
	}
	n := 0
	for r, err := range c.Calls(ctx, map[string]any{"CALL_ID": callID}) {
		if err != nil || r.CallID != callID {
			t.Fatalf("%v %v", r, err)
		}
		n++
	}
	if n != 1 {
		t.Fatalf("Calls yielded %d", n)
	}
	if _, err := c.GetDiskFile(ctx, 999); !errors.Is(err, bitrix.KindNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestEventsEndToEnd(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	store := &bitrix.MemoryTokenStore{}
	in := install(t, p, store)
	c := oauthClient(t, p, in, store, bitrix.Config{})
	s := newSink(t)

	for range 2 { // "Handler already binded" is success (§1.2)
		for _, ev := range []string{"ONCRMDEALUPDATE", "ONAPPTEST"} {
			if err := c.BindEvent(ctx, bitrix.EventBinding{Event: ev, Handler: s.URL()}); err != nil {
				t.Fatalf("bind %s: %v", ev, err)
			}
		}
	}
	if err := c.BindEvent(ctx, bitrix.EventBinding{Event: "ONCRMDEALUPDATE", Handler: "http://localhost/x"}); err == nil || bitrix.IsAlreadyBound(err) {
		t.Fatalf("invalid handler accepted: %v", err)
	}
	bs, err := c.EventBindings(ctx)
	if err != nil || len(bs) != 2 || bs[0].Event != "ONCRMDEALUPDATE" || bs[0].Handler != s.URL() || bs[0].Offline {
		t.Fatalf("bindings %+v %v", bs, err)
	}

	id := bitrix.ID(p.CreateDeal(nil, false))
	if err := c.UpdateDeal(ctx, id, map[string]any{"TITLE": "x"}, bitrix.DealUpdate{}); err != nil {
		t.Fatal(err)
	}
	if err := c.TestEvent(ctx, map[string]any{"probe": "42"}); err != nil {
		t.Fatal(err)
	}
	drain(t, p)
	got := s.got()
	if len(got) != 2 {
		t.Fatalf("%d pushes", len(got))
	}
	slices.SortFunc(got, func(a, b *b24event.Event) int { return strings.Compare(a.Name, b.Name) })
	if got[0].Name != "ONAPPTEST" || got[0].Data["QUERY"].(map[string]any)["probe"] != "42" {
		t.Fatalf("ONAPPTEST %+v", got[0])
	}
	if got[1].Name != "ONCRMDEALUPDATE" || got[1].EntityID != id.String() || got[1].ApplicationToken != in.ApplicationToken || got[1].MemberID != in.MemberID {
		t.Fatalf("ONCRMDEALUPDATE %+v", got[1])
	}
	// The event's own token works against the portal (but the platform
	// must not write with it, §3.4).
	if got[1].AccessToken == "" {
		t.Fatal("no access token in the app event")
	}

	n, err := c.UnbindEvent(ctx, bitrix.EventBinding{Event: "ONCRMDEALUPDATE", Handler: s.URL()})
	if err != nil || n != 1 {
		t.Fatalf("unbind %d %v", n, err)
	}

	info, err := c.AppInfo(ctx)
	if err != nil || !bool(info.Installed) || info.Status != "L" {
		t.Fatalf("app.info %+v %v", info, err)
	}
	on, err := c.Feature(ctx, "rest_offline_extended")
	if err != nil || !on {
		t.Fatalf("feature %v %v", on, err)
	}
	if off, _ := c.Feature(ctx, "no_such_feature"); off {
		t.Fatal("unknown feature enabled")
	}
}

func TestOfflineEventsFlow(t *testing.T) {
	ctx := context.Background()
	p := newFake(t, fakeportal.Config{})
	store := &bitrix.MemoryTokenStore{}
	in := install(t, p, store)
	c := oauthClient(t, p, in, store, bitrix.Config{})
	const conn = "b24hub"
	if err := c.BindEvent(ctx, bitrix.EventBinding{Event: "ONCRMDEALUPDATE", Offline: true, AuthConnector: conn}); err != nil {
		t.Fatal(err)
	}
	ids := p.BulkEditDeals(30, map[string]string{"STAGE_ID": "WON"})
	p.BulkEditDeals(30, map[string]string{"STAGE_ID": "LOSE"}) // coalesces into the same 30 records
	// Our own write, tagged with the connector, is not queued (§2.4).
	if err := c.UpdateDeal(ctx, bitrix.ID(ids[0]), map[string]any{"TITLE": "own"}, bitrix.DealUpdate{AuthConnector: conn}); err != nil {
		t.Fatal(err)
	}

	batch, err := c.OfflineEvents(ctx, bitrix.OfflineQuery{AuthConnector: conn, Limit: 20})
	if err != nil || len(batch.Events) != 20 || len(batch.ProcessID) != 32 {
		t.Fatalf("reserve: %+v %v", batch, err)
	}
	ev := batch.Events[0]
	if ev.EventName != "ONCRMDEALUPDATE" || string(ev.EventData) != `{"FIELDS":{"ID":"1"}}` || len(ev.MessageID) != 32 {
		t.Fatalf("record %+v", ev)
	}
	// Mark one failed, clear the rest.
	if err := c.ErrorOfflineEvents(ctx, batch.ProcessID, []string{ev.MessageID}); err != nil {
		t.Fatal(err)
	}
	if err := c.ClearOfflineEvents(ctx, batch.ProcessID, nil, nil); err != nil {
		t.Fatal(err)
	}
	rest, err := c.OfflineEvents(ctx, bitrix.OfflineQuery{AuthConnector: conn, Limit: 50})
	if err != nil || len(rest.Events) != 10 {
		t.Fatalf("remaining: %d %v", len(rest.Events), err)
	}
	failed, err := c.OfflineEvents(ctx, bitrix.OfflineQuery{AuthConnector: conn, Errors: true, Clear: true})
	if err != nil || len(failed.Events) != 1 || failed.ProcessID != "" || failed.Events[0].MessageID != ev.MessageID {
		t.Fatalf("failed records: %+v %v", failed, err)
	}
}
