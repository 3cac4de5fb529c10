package b24event

import (
	"io/fs"
	"testing"

	"github.com/b24hub/b24hub/libs/b24event/fixtures"
)

// benchDeal is a ~1 KiB deal update shaped like a real capture: long-form
// OAuth tokens, full auth block, percent-encoded brackets.
var benchDeal = EncodeForm([]Field{
	{"event", "ONCRMDEALUPDATE"},
	{"event_handler_id", "201"},
	{"data[FIELDS][ID]", "759"},
	{"ts", "1736405807"},
	{"auth[access_token]", "ccb69d690000071b0000084400000237f0f10799e08fc9016818e8b51ecc9f7b5342a5"},
	{"auth[expires]", "1736409407"},
	{"auth[expires_in]", "3600"},
	{"auth[scope]", "crm,placement,user_brief,task,telephony,imbot,im,disk,bizproc,calendar"},
	{"auth[domain]", "some-long-portal-name.bitrix24.com"},
	{"auth[server_endpoint]", "https://oauth.bitrix.info/rest/"},
	{"auth[status]", "F"},
	{"auth[client_endpoint]", "https://some-long-portal-name.bitrix24.com/rest/"},
	{"auth[member_id]", "a223c6b3710f85df22e9377d6c4f7553"},
	{"auth[user_id]", "1"},
	{"auth[refresh_token]", "bc35c5690000071b0000084400000237f0f107abd386665cf9cfc96eaf25e017730bc5"},
	{"auth[application_token]", "51856fefc120afa4b628cc82d3935cce"},
})

func BenchmarkDecodeDealUpdate(b *testing.B) {
	b.SetBytes(int64(len(benchDeal)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(ContentTypeForm, benchDeal, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngressDealUpdate is the whole per-POST cost on the ingress:
// Decode + Event + Redacted + MessageID.
func BenchmarkIngressDealUpdate(b *testing.B) {
	b.SetBytes(int64(len(benchDeal)))
	b.ReportAllocs()
	for b.Loop() {
		body, err := Decode(ContentTypeForm, benchDeal, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		ev, err := body.Event()
		if err != nil {
			b.Fatal(err)
		}
		_ = body.Redacted()
		_ = MessageID(ev)
	}
}

func BenchmarkEventDealUpdate(b *testing.B) {
	body, _ := Decode(ContentTypeForm, benchDeal, Limits{})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := body.Event(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRedactedDealUpdate(b *testing.B) {
	body, _ := Decode(ContentTypeForm, benchDeal, Limits{})
	b.ReportAllocs()
	for b.Loop() {
		_ = body.Redacted()
	}
}

func BenchmarkMessageIDDealUpdate(b *testing.B) {
	body, _ := Decode(ContentTypeForm, benchDeal, Limits{})
	ev, _ := body.Event()
	b.ReportAllocs()
	for b.Loop() {
		_ = MessageID(ev)
	}
}

// BenchmarkIngressBotMessage: the largest documented event (~100 pairs,
// credentials inside data, so Event rebuilds the redacted data subtree).
func BenchmarkIngressBotMessage(b *testing.B) {
	raw, err := fs.ReadFile(fixtures.FS(), "DOCS-ONIMBOTMESSAGEADD-groupchat.json.txt")
	if err != nil {
		b.Fatal(err)
	}
	fx, err := parseFixture("bot", raw)
	if err != nil {
		b.Fatal(err)
	}
	form := EncodeForm(fx.fields)
	b.SetBytes(int64(len(form)))
	b.ReportAllocs()
	for b.Loop() {
		body, err := Decode(ContentTypeForm, form, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		ev, err := body.Event()
		if err != nil {
			b.Fatal(err)
		}
		_ = body.Redacted()
		_ = MessageID(ev)
	}
}

func BenchmarkDecodeJSONDealUpdate(b *testing.B) {
	body, _ := Decode(ContentTypeForm, benchDeal, Limits{})
	body.ContentType = ContentTypeJSON
	js := body.Redacted()
	b.SetBytes(int64(len(js)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(ContentTypeJSON, js, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDeliveryDealUpdate is BenchmarkIngressDealUpdate through the
// ingress's fast path, DecodeDelivery.
func BenchmarkDeliveryDealUpdate(b *testing.B) {
	b.SetBytes(int64(len(benchDeal)))
	b.ReportAllocs()
	buf := make([]byte, 0, 2048)
	for b.Loop() {
		d, err := DecodeDelivery(ContentTypeForm, benchDeal, Limits{})
		if err != nil {
			b.Fatal(err)
		}
		buf = d.AppendRedacted(buf[:0])
	}
}
