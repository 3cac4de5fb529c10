package onprem

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/labstack/echo/v4"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/protobuf/proto"
)

const (
	installation = "crm-main"
	secret       = "0123456789abcdef0123456789abcdef"
)

var clock = time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)

// recorder is a hand-written Publisher that stores messages and can be made
// to fail from the nth publish on.
type recorder struct {
	mu     sync.Mutex
	msgs   []eventbus.Message
	failAt int // 0: never; n: the nth publish and later fail
}

func (r *recorder) Publish(_ context.Context, m eventbus.Message) (*jetstream.PubAck, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failAt > 0 && len(r.msgs)+1 >= r.failAt {
		return nil, eventbus.ErrNotConfirmed
	}
	r.msgs = append(r.msgs, m)
	return &jetstream.PubAck{Stream: eventbus.StreamEvents, Sequence: uint64(len(r.msgs))}, nil
}

func newHandler(t *testing.T, pub Publisher) *echo.Echo {
	t.Helper()
	reg := portals.NewRegistry()
	err := reg.Replace(portals.SourceFile, []portals.Portal{
		{MemberID: installation, Domain: "crm.example.com", Active: true, OnPremise: true, SigningSecret: []byte(secret)},
		{MemberID: "retired", Active: false, OnPremise: true, SigningSecret: []byte(secret)},
		{MemberID: "rest-portal", TokenSHA256: portals.HashToken("t"), Active: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{MaxBodyBytes: 4096}, reg, pub, slog.New(slog.NewTextHandler(io.Discard, nil)), noop.NewMeterProvider().Meter(""))
	if err != nil {
		t.Fatal(err)
	}
	h.now = func() time.Time { return clock }
	e := echo.New()
	h.Register(e)
	return e
}

const (
	id1 = "0b6e3c1e-8a4f-4c8e-9d1a-2f3b4c5d6e7f"
	id2 = "1c7f4d2f-9b50-4d9f-ae2b-3a4c5d6e7f80"
)

func event(id, name, entity string) string {
	return `{"id":"` + id + `","module":"crm","event":"` + name + `","time":"2026-12-03T08:59:58+00:00","user_id":7,` +
		`"entity_id":"` + entity + `","params":[{"ID":` + entity + `,"TITLE":"Big deal"}]}`
}

func body(inst string, events ...string) string {
	return `{"installation":"` + inst + `","events":[` + strings.Join(events, ",") + `]}`
}

type post struct {
	installation, ts, sig, contentType, body string
}

func signed(b string) post {
	ts := strconv.FormatInt(clock.Unix(), 10)
	return post{installation: installation, ts: ts, sig: Sign([]byte(secret), clock.Unix(), []byte(b)), contentType: "application/json", body: b}
}

func (p post) do(e *echo.Echo) (int, Answer) {
	req := httptest.NewRequest(http.MethodPost, Path, strings.NewReader(p.body))
	req.Header.Set(echo.HeaderContentType, p.contentType)
	if p.installation != "" {
		req.Header.Set(HeaderInstallation, p.installation)
	}
	req.Header.Set(HeaderTimestamp, p.ts)
	req.Header.Set(HeaderSignature, p.sig)
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	var a Answer
	_ = json.Unmarshal(rec.Body.Bytes(), &a)
	return rec.Code, a
}

func TestServeAcceptsAndPublishesInOrder(t *testing.T) {
	pub := &recorder{}
	e := newHandler(t, pub)
	code, a := signed(body(installation, event(id1, "OnAfterCrmDealUpdate", "42"), event(id2, "OnAfterCrmDealDelete", "43"))).do(e)
	if code != http.StatusOK || strings.Join(a.Acked, ",") != id1+","+id2 || a.Error != "" {
		t.Fatalf("answer %d %+v", code, a)
	}
	if len(pub.msgs) != 2 {
		t.Fatalf("published %d", len(pub.msgs))
	}
	m := pub.msgs[0]
	if m.Subject != "b24.events.crm-main.ONAFTERCRMDEALUPDATE" || pub.msgs[1].Subject != "b24.events.crm-main.ONAFTERCRMDEALDELETE" {
		t.Fatalf("subjects %s, %s", m.Subject, pub.msgs[1].Subject)
	}
	if m.MsgID != MessageID(installation, id1) || m.Header.Get(eventbus.HeaderSource) != eventbus.SourceOnPrem ||
		m.Header.Get(eventbus.HeaderEntityID) != "42" {
		t.Fatalf("message id %s, headers %v", m.MsgID, m.Header)
	}
	var env eventsv1.Envelope
	if err := proto.Unmarshal(m.Data, &env); err != nil {
		t.Fatal(err)
	}
	if env.GetSource() != eventsv1.Source_SOURCE_ONPREM || env.GetMemberId() != installation || env.GetDomain() != "crm.example.com" ||
		env.GetEvent() != "ONAFTERCRMDEALUPDATE" || env.GetEntityId() != "42" || env.GetContentType() != "application/json" ||
		!env.GetEventTs().AsTime().Equal(clock.Add(-2*time.Second)) || string(env.GetBody()) != event(id1, "OnAfterCrmDealUpdate", "42") {
		t.Fatalf("envelope %v", &env)
	}
}

func TestServeRefusals(t *testing.T) {
	good := body(installation, event(id1, "OnAfterCrmDealUpdate", "42"))
	old := signed(good)
	old.ts = strconv.FormatInt(clock.Add(-10*time.Minute).Unix(), 10)
	old.sig = Sign([]byte(secret), clock.Add(-10*time.Minute).Unix(), []byte(good))
	future := signed(good)
	future.ts = strconv.FormatInt(clock.Add(6*time.Minute).Unix(), 10)
	future.sig = Sign([]byte(secret), clock.Add(6*time.Minute).Unix(), []byte(good))
	tampered := signed(good)
	tampered.body = strings.Replace(good, "Big deal", "Huge deal", 1)
	wrongSecret := signed(good)
	wrongSecret.sig = Sign([]byte("another-secret-another-secret-xx"), clock.Unix(), []byte(good))
	unknown := signed(good)
	unknown.installation = "nobody"
	retired := signed(good)
	retired.installation = "retired"
	rest := signed(good)
	rest.installation = "rest-portal"
	noHeader := signed(good)
	noHeader.installation = ""
	badTS := signed(good)
	badTS.ts = "yesterday"
	badScheme := signed(good)
	badScheme.sig = strings.TrimPrefix(badScheme.sig, "v1=")
	form := signed(good)
	form.contentType = "application/x-www-form-urlencoded"
	other := body("other", event(id1, "OnAfterCrmDealUpdate", "42"))
	mismatch := signed(other)
	malformed := signed(body(installation, strings.Replace(event(id1, "OnAfterCrmDealUpdate", "42"), id1, "not-a-uuid", 1)))
	large := signed(body(installation, event(id1, "OnAfterCrmDealUpdate", strings.Repeat("1", 5000))))

	tests := []struct {
		name string
		p    post
		code int
		want string
	}{
		{"tampered body", tampered, 401, "bad signature"},
		{"wrong secret", wrongSecret, 401, "bad signature"},
		{"signature without scheme", badScheme, 401, "bad signature: X-B24hub-Signature must be v1="},
		{"old timestamp", old, 401, "stale timestamp: X-B24hub-Timestamp is 10m0s from the ingress clock, allowed ±5m0s"},
		{"future timestamp", future, 401, "stale timestamp"},
		{"timestamp not a number", badTS, 400, "malformed timestamp"},
		{"unknown installation", unknown, 403, "unknown installation"},
		{"inactive installation", retired, 403, "unknown installation"},
		{"a REST portal's id", rest, 403, "unknown installation"},
		{"no installation header", noHeader, 400, "missing X-B24hub-Installation header"},
		{"form body", form, 415, "content type must be application/json"},
		{"body names another installation", mismatch, 400, "malformed body: installation differs"},
		{"malformed event", malformed, 400, `malformed body: events[0]: id "not-a-uuid"`},
		{"too large", large, 413, "body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{}
			code, a := tt.p.do(newHandler(t, pub))
			if code != tt.code || !strings.HasPrefix(a.Error, tt.want) || len(a.Acked) != 0 {
				t.Fatalf("answer %d %+v, want %d %q", code, a, tt.code, tt.want)
			}
			if len(pub.msgs) != 0 {
				t.Fatalf("published %d messages on a refusal", len(pub.msgs))
			}
		})
	}
}

func TestServeAcksOnlyTheStoredPrefix(t *testing.T) {
	id3 := "2d8a5e3a-ac61-4eaf-bf3c-4b5d6e7f8091"
	b := body(installation, event(id1, "OnAfterCrmDealUpdate", "1"), event(id2, "OnAfterCrmDealUpdate", "2"), event(id3, "OnAfterCrmDealUpdate", "3"))
	tests := []struct {
		name   string
		failAt int
		code   int
		acked  []string
	}{
		{"all stored", 0, 200, []string{id1, id2, id3}},
		{"third fails", 3, 200, []string{id1, id2}},
		{"first fails", 1, 503, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub := &recorder{failAt: tt.failAt}
			code, a := signed(b).do(newHandler(t, pub))
			if code != tt.code || strings.Join(a.Acked, ",") != strings.Join(tt.acked, ",") {
				t.Fatalf("answer %d %+v, want %d acked %v", code, a, tt.code, tt.acked)
			}
			if len(tt.acked) < 3 && a.Error != "event store unavailable, retry later" {
				t.Fatalf("error %q", a.Error)
			}
		})
	}
}

func TestMessageIDIsPerInstallationAndStable(t *testing.T) {
	a, b := MessageID("one", id1), MessageID("two", id1)
	if a == b || a != MessageID("one", id1) || len(a) != 32 {
		t.Fatalf("ids %s %s", a, b)
	}
}

func TestVerify(t *testing.T) {
	b := []byte(`{"x":1}`)
	ts := clock.Unix()
	sig := Sign([]byte(secret), ts, b)
	tests := []struct {
		name    string
		ts, sig string
		body    []byte
		want    error
	}{
		{"good", strconv.FormatInt(ts, 10), sig, b, nil},
		{"edge of the window", strconv.FormatInt(ts-300, 10), Sign([]byte(secret), ts-300, b), b, nil},
		{"past the window", strconv.FormatInt(ts-301, 10), Sign([]byte(secret), ts-301, b), b, ErrStaleTimestamp},
		{"timestamp swapped", strconv.FormatInt(ts-1, 10), sig, b, ErrBadSignature},
		{"upper-case hex is the same MAC", strconv.FormatInt(ts, 10), "v1=" + strings.ToUpper(strings.TrimPrefix(sig, "v1=")), b, nil},
		{"not hex", strconv.FormatInt(ts, 10), "v1=zz", b, ErrBadSignature},
		{"truncated", strconv.FormatInt(ts, 10), sig[:20], b, ErrBadSignature},
		{"empty", "", "", b, ErrBadTimestamp},
		{"negative", "-5", sig, b, ErrBadTimestamp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Verify([]byte(secret), tt.ts, tt.sig, tt.body, clock, DefaultWindow)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestParseDeliveryErrors(t *testing.T) {
	ev := event(id1, "OnAfterCrmDealUpdate", "42")
	tests := []struct{ name, body, want string }{
		{"not json", `{`, "unexpected EOF"},
		{"trailing data", body(installation, ev) + "x", "data after the JSON value"},
		{"unknown field", `{"installation":"a","events":[],"extra":1}`, "unknown field"},
		{"no events", body(installation), "events: empty"},
		{"bad installation", body("a b", ev), "installation"},
		{"event unknown field", body(installation, strings.Replace(ev, `"params"`, `"colour":1,"params"`, 1)), `events[0]: json: unknown field "colour"`},
		{"upper-case uuid", body(installation, strings.Replace(ev, id1, strings.ToUpper(id1), 1)), "want a lower-case UUID v4"},
		{"uuid v1", body(installation, strings.Replace(ev, id1, "0b6e3c1e-8a4f-1c8e-9d1a-2f3b4c5d6e7f", 1)), "UUID v4"},
		{"module with capitals", body(installation, strings.Replace(ev, `"crm"`, `"CRM"`, 1)), "module"},
		{"event with a dot", body(installation, strings.Replace(ev, "OnAfterCrmDealUpdate", "On.After", 1)), "event"},
		{"no time", body(installation, strings.Replace(ev, `"time":"2026-12-03T08:59:58+00:00",`, "", 1)), "time: required"},
		{"bad time", body(installation, strings.Replace(ev, `2026-12-03T08:59:58+00:00`, `yesterday`, 1)), "time"},
		{"negative user", body(installation, strings.Replace(ev, `"user_id":7`, `"user_id":-1`, 1)), "user_id -1"},
		{"bad entity", body(installation, strings.Replace(ev, `"entity_id":"42"`, `"entity_id":"4 2"`, 1)), "entity_id"},
		{"params object", body(installation, strings.Replace(ev, `"params":[{"ID":42,"TITLE":"Big deal"}]`, `"params":{}`, 1)), "params: want a JSON array"},
		{"same id twice", body(installation, ev, ev), "sent twice"},
		{"too many", body(installation, strings.Repeat(ev+",", MaxEvents)+ev), "at most 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseDelivery([]byte(tt.body))
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrMalformed containing %q", err, tt.want)
			}
		})
	}
}

func TestParseDeliveryNullUser(t *testing.T) {
	ev := strings.Replace(event(id1, "OnSomethingHappened", "7"), `"user_id":7`, `"user_id":null`, 1)
	d, err := ParseDelivery([]byte(body(installation, ev)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Events[0].UserID != nil || d.Events[0].Subject() != "ONSOMETHINGHAPPENED" || string(d.Events[0].Raw) != ev {
		t.Fatalf("parsed %+v", d.Events[0])
	}
}

// FuzzParseDelivery: no input panics, and whatever is accepted satisfies
// every invariant the handler relies on before publishing.
func FuzzParseDelivery(f *testing.F) {
	f.Add([]byte(body(installation, event(id1, "OnAfterCrmDealUpdate", "42"))))
	f.Add([]byte(body(installation, event(id1, "OnAfterCrmDealUpdate", "42"), event(id2, "OnSomethingHappened", "x"))))
	f.Add([]byte(`{"installation":"a","events":[{"id":"` + id1 + `","module":"m","event":"E","time":"2026-01-01T00:00:00Z","user_id":null,"params":[]}]}`))
	f.Add([]byte(`{"installation":"a","events":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := ParseDelivery(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if !eventbus.ValidToken(d.Installation) || len(d.Events) == 0 || len(d.Events) > MaxEvents {
			t.Fatalf("accepted %+v", d)
		}
		seen := map[string]bool{}
		for _, ev := range d.Events {
			if !ValidUUIDv4(ev.ID) || seen[ev.ID] || !eventbus.ValidToken(ev.Subject()) || ev.Time.IsZero() || len(ev.Raw) == 0 || !json.Valid(ev.Raw) {
				t.Fatalf("accepted event %+v", ev)
			}
			if _, _, err := eventbus.ParseRawEvent(eventbus.RawEvent(d.Installation, ev.Subject())); err != nil {
				t.Fatalf("accepted event makes subject error: %v", err)
			}
			seen[ev.ID] = true
		}
	})
}
