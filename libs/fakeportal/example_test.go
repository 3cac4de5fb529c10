package fakeportal_test

import (
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

// A fake portal answers like the real one, limits included.
func ExampleNew() {
	p, err := fakeportal.New(fakeportal.Config{Burst: 2})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	hook := p.AddWebhook(1, "secretcode")
	id := p.CreateDeal(map[string]string{"TITLE": "Hello"}, false)
	for range 3 {
		resp, _ := p.Client().Post(hook+"crm.deal.get", "application/json", strings.NewReader(fmt.Sprintf(`{"id":%d}`, id)))
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, strings.Contains(string(b), `"TITLE":"Hello"`), strings.Contains(string(b), "QUERY_LIMIT_EXCEEDED"))
	}
	fmt.Println(p.Stats().QueryLimitExceeded)
	// Output:
	// 200 true false
	// 200 true false
	// 503 false true
	// 1
}

// A bulk edit fires one event per deal to every handler; an outgoing
// webhook's pushes carry no tokens.
func ExamplePortal_BulkEditDeals() {
	var mu = make(chan string, 10)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu <- r.PostForm.Get("event") + " " + r.PostForm.Get("data[FIELDS][ID]") + " token=" + r.PostForm.Get("auth[access_token]")
	})
	srv := newServer(h)
	defer srv.Close()
	p, _ := fakeportal.New(fakeportal.Config{})
	defer p.Close()
	p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: srv.URL, ApplicationToken: "tok", Events: []string{"ONCRMDEALUPDATE"}})
	p.BulkEditDeals(3, map[string]string{"STAGE_ID": "WON"})
	var got []string
	for range 3 {
		got = append(got, <-mu)
	}
	sortStrings(got)
	fmt.Println(strings.Join(got, "\n"))
	// Output:
	// ONCRMDEALUPDATE 1 token=
	// ONCRMDEALUPDATE 2 token=
	// ONCRMDEALUPDATE 3 token=
}
