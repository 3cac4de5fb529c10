package b24event_test

import (
	"fmt"

	"github.com/b24hub/b24hub/libs/b24event"
)

// A deal update as Bitrix24 POSTs it to the ingress.
const dealUpdateBody = "event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=759&ts=1736405807" +
	"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bdomain%5D=some-domain.bitrix24.com" +
	"&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553&auth%5Bapplication_token%5D=51856fefc120afa4b628cc82d3935cce"

func ExampleDecode() {
	b, err := b24event.Decode("application/x-www-form-urlencoded; charset=utf-8", []byte(dealUpdateBody), b24event.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Fields[2].Key, "=", b.Fields[2].Value)
	fmt.Println(b.Tree["data"])
	// What the ingress publishes: same order, no credentials.
	fmt.Println(string(b.Redacted()))
	// Output:
	// data[FIELDS][ID] = 759
	// map[FIELDS:map[ID:759]]
	// event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=759&ts=1736405807&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553
}

func ExampleDecode_limits() {
	lim := b24event.DefaultLimits()
	lim.MaxDepth = 2
	_, err := b24event.Decode(b24event.ContentTypeForm, []byte("a[b][c][d]=1"), lim)
	fmt.Println(err)
	// Output:
	// b24event: key nested too deep: key "a[b][c][d]": depth > 2
}

func ExampleBody_Event() {
	b, err := b24event.Decode(b24event.ContentTypeForm, []byte(dealUpdateBody), b24event.Limits{})
	if err != nil {
		fmt.Println(err)
		return
	}
	ev, err := b.Event()
	if err != nil {
		fmt.Println(err) // wraps ErrMalformed: answer 400
		return
	}
	fmt.Println(ev.Name, ev.MemberID, ev.EntityID, ev.TS.Format("2006-01-02T15:04:05Z07:00"))
	// Output:
	// ONCRMDEALUPDATE a223c6b3710f85df22e9377d6c4f7553 759 2025-01-09T06:56:47Z
}

func ExampleMessageID() {
	b, _ := b24event.Decode(b24event.ContentTypeForm, []byte(dealUpdateBody), b24event.Limits{})
	ev, _ := b.Event()
	// Use it as the Nats-Msg-Id: a duplicate POST gets the same id.
	fmt.Println(b24event.MessageID(ev))

	// The published (redacted) body yields the same id.
	rb, _ := b24event.Decode(b24event.ContentTypeForm, b.Redacted(), b24event.Limits{})
	rev, _ := rb.Event()
	fmt.Println(b24event.MessageID(rev) == b24event.MessageID(ev))
	// Output:
	// fbb065d67ab9685f6cd341710f1895ed
	// true
}

func ExampleFormFromJSON() {
	fields, err := b24event.FormFromJSON([]byte(`{"event":"ONTASKADD","data":{"FIELDS_BEFORE":"undefined","FIELDS_AFTER":{"ID":123}},"auth":{"member_id":"m"}}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(b24event.EncodeForm(fields)))
	// Output:
	// event=ONTASKADD&data%5BFIELDS_BEFORE%5D=undefined&data%5BFIELDS_AFTER%5D%5BID%5D=123&auth%5Bmember_id%5D=m
}
