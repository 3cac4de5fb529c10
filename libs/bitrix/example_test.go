package bitrix_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/fakeportal"
)

// A webhook client against the fake portal: 120 deals changed in a bulk
// edit are fetched in three batch requests.
func ExampleClient_GetDeals() {
	p, _ := fakeportal.New(fakeportal.Config{})
	defer p.Close()
	var ids []bitrix.ID
	for range 120 {
		ids = append(ids, bitrix.ID(p.CreateDeal(map[string]string{"STAGE_ID": "WON"}, false)))
	}
	c, err := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "code"), MemberID: p.MemberID()},
		bitrix.WithHTTPClient(p.Client()))
	if err != nil {
		panic(err)
	}
	deals, errs, err := c.GetDeals(context.Background(), ids)
	fmt.Println(len(deals), len(errs), err, deals[42].StageID)
	fmt.Println("requests:", p.Stats().Requests)
	// Output:
	// 120 0 <nil> WON
	// requests: 3
}

// ListDeals walks large sets with start=-1 and ID paging; break stops it.
func ExampleClient_ListDeals() {
	p, _ := fakeportal.New(fakeportal.Config{})
	defer p.Close()
	for i := range 5 {
		p.CreateDeal(map[string]string{"TITLE": fmt.Sprint("Deal ", i+1)}, false)
	}
	c, _ := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "code")}, bitrix.WithHTTPClient(p.Client()))
	ctx := context.Background()
	for d, err := range c.ListDeals(ctx, bitrix.DealQuery{Filter: map[string]any{">ID": 2}}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(d.ID, d.Title)
	}
	// Output:
	// 3 Deal 3
	// 4 Deal 4
	// 5 Deal 5
}

// ListTasks walks tasks.task.list the same way; rows are camelCase tasks.
func ExampleClient_ListTasks() {
	p, _ := fakeportal.New(fakeportal.Config{})
	defer p.Close()
	for i := range 3 {
		p.CreateTask(fakeportal.Task{Title: fmt.Sprint("Task ", i+1)}, false)
	}
	c, _ := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "code")}, bitrix.WithHTTPClient(p.Client()))
	for tk, err := range c.ListTasks(context.Background(), bitrix.TaskQuery{Filter: map[string]any{">ID": 1}}) {
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(tk.ID, tk.Title)
	}
	// Output:
	// 2 Task 2
	// 3 Task 3
}

// Batch runs dependent commands in order; a failed command does not fail
// the batch.
func ExampleClient_Batch() {
	p, _ := fakeportal.New(fakeportal.Config{})
	defer p.Close()
	p.CreateDeal(map[string]string{"TITLE": "Original"}, false)
	c, _ := bitrix.New(bitrix.Config{WebhookURL: p.AddWebhook(1, "code")}, bitrix.WithHTTPClient(p.Client()))
	res, err := c.Batch(context.Background(), false,
		bitrix.BatchCommand{Key: "deal", Method: "crm.deal.get", Params: map[string]any{"id": 1}},
		bitrix.BatchCommand{Key: "copy", Method: "crm.deal.update", Params: map[string]any{
			"id": bitrix.Ref("deal", "ID"), "fields": map[string]any{"COMMENTS": "was " + bitrix.Ref("deal", "TITLE")}}},
		bitrix.BatchCommand{Key: "missing", Method: "crm.deal.get", Params: map[string]any{"id": 99}},
	)
	if err != nil {
		panic(err)
	}
	d, _ := p.Deal(1)
	fmt.Println(d["COMMENTS"])
	fmt.Println(errors.Is(res.Errors["missing"], bitrix.KindNotFound))
	// Output:
	// was Original
	// true
}

// Errors carry a Kind that says what to do.
func ExampleKind() {
	err := fmt.Errorf("sync deal 7: %w", &bitrix.Error{Status: 429, Code: "OPERATION_TIME_LIMIT",
		Method: "crm.deal.update", ResetAt: time.Unix(1789646720, 0)})
	switch {
	case errors.Is(err, bitrix.KindOverload):
		fmt.Println("alert: REST blocked by Bitrix24 support")
	case errors.Is(err, bitrix.KindOperationLimit):
		fmt.Println("retry in", bitrix.RetryAfter(err, time.Unix(1789646600, 0)))
	}
	fmt.Println(bitrix.Retryable(err))
	// Output:
	// retry in 2m0s
	// true
}
