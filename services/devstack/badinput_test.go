package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/b24hub/b24hub/libs/b24event"
	"github.com/b24hub/b24hub/libs/b24event/fixtures"
	"github.com/nats-io/nats.go/jetstream"
)

// badRequest is one hostile or broken request.
type badRequest struct {
	name        string
	method      string // default POST
	path        string // default /bitrix24/events
	contentType string
	body        []byte
}

// badCorpus is malformed, oversized, deeply nested, wrongly encoded and
// wrongly authenticated input. Every entry must get a 4xx.
func (s *testStack) badCorpus() []badRequest {
	form := "application/x-www-form-urlencoded"
	js := "application/json"
	valid := s.dealUpdate(1) // a good body for the demo portal, to corrupt
	auth := "&auth%5Bmember_id%5D=" + s.demo.MemberID + "&auth%5Bapplication_token%5D=" + s.demo.Token
	good := func(extra string) []byte {
		return []byte("event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1&ts=1" + extra + auth)
	}
	big := strings.Repeat("x", 300<<10)
	deepForm := "event=ONCRMDEALUPDATE&data" + strings.Repeat("%5Ba%5D", 2000) + "=1" + auth
	deepJSON := strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)
	var manyKeys strings.Builder
	manyKeys.WriteString("event=ONCRMDEALUPDATE" + auth)
	for i := 0; manyKeys.Len() < 200<<10; i++ {
		fmt.Fprintf(&manyKeys, "&k%d=1", i)
	}
	utf16JSON := func(s string) []byte {
		var b bytes.Buffer
		b.Write([]byte{0xff, 0xfe})
		for _, r := range utf16.Encode([]rune(s)) {
			b.WriteByte(byte(r))
			b.WriteByte(byte(r >> 8))
		}
		return b.Bytes()
	}
	goodJSON := fmt.Sprintf(`{"event":"ONCRMDEALUPDATE","data":{"FIELDS":{"ID":"1"}},"ts":"1","auth":{"member_id":%q,"application_token":%q}}`,
		s.demo.MemberID, s.demo.Token)
	wrongToken := strings.Replace(valid, s.demo.Token, "0123456789abcdef0123456789abcdef", 1)
	return []badRequest{
		{name: "empty form", contentType: form, body: nil},
		{name: "empty json", contentType: js, body: nil},
		{name: "no member id", contentType: form, body: []byte("event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=1")},
		{name: "no event", contentType: form, body: []byte("data%5BFIELDS%5D%5BID%5D=1" + auth)},
		{name: "bad percent escape", contentType: form, body: []byte("event=ONCRM%ZZDEALUPDATE" + auth)},
		{name: "unclosed bracket", contentType: form, body: []byte("event=ONCRMDEALUPDATE&auth%5Bmember_id=" + s.demo.MemberID + "&auth%5Bapplication_token%5D=" + s.demo.Token)},
		{name: "bracket soup", contentType: form, body: []byte("event=ONCRMDEALUPDATE&data]]][[[=1&%5B%5D%5B%5D=2" + auth)},
		{name: "oversized form", contentType: form, body: good("&data%5BX%5D=" + big)},
		{name: "oversized json", contentType: js, body: []byte(`{"event":"ONCRMDEALUPDATE","x":"` + big + `"}`)},
		{name: "deeply nested form", contentType: form, body: []byte(deepForm)},
		{name: "deeply nested json", contentType: js, body: []byte(deepJSON)},
		{name: "too many keys", contentType: form, body: []byte(manyKeys.String())},
		{name: "truncated json", contentType: js, body: []byte(goodJSON[:len(goodJSON)/2])},
		{name: "json array", contentType: js, body: []byte(`[` + goodJSON + `]`)},
		{name: "json numbers for auth", contentType: js, body: []byte(`{"event":"ONCRMDEALUPDATE","auth":{"member_id":1,"application_token":2}}`)},
		{name: "utf-16 json", contentType: js, body: utf16JSON(goodJSON)},
		{name: "utf-16 json claiming utf-16", contentType: js + "; charset=utf-16", body: utf16JSON(goodJSON)},
		{name: "invalid utf-8 member id", contentType: form, body: []byte("event=ONCRMDEALUPDATE&auth%5Bmember_id%5D=%FF%FE%FD&auth%5Bapplication_token%5D=" + s.demo.Token)},
		{name: "latin-1 token", contentType: form + "; charset=iso-8859-1", body: []byte("event=ONCRMDEALUPDATE&auth%5Bmember_id%5D=" + s.demo.MemberID + "&auth%5Bapplication_token%5D=%E9%E8%E0")},
		{name: "json body sent as form", contentType: form, body: []byte(goodJSON)},
		{name: "form body sent as json", contentType: js, body: []byte(valid)},
		{name: "text/plain", contentType: "text/plain", body: []byte(valid)},
		{name: "multipart", contentType: "multipart/form-data; boundary=x", body: []byte("--x\r\nContent-Disposition: form-data; name=\"event\"\r\n\r\nONCRMDEALUPDATE\r\n--x--\r\n")},
		{name: "no content type", contentType: "", body: []byte(valid)},
		{name: "wrong application token", contentType: form, body: []byte(wrongToken)},
		{name: "empty application token", contentType: form, body: []byte(strings.Replace(valid, s.demo.Token, "", 1))},
		{name: "no application token", contentType: form, body: []byte("event=ONCRMDEALUPDATE&auth%5Bmember_id%5D=" + s.demo.MemberID)},
		{name: "unknown member id", contentType: form, body: []byte(strings.Replace(valid, s.demo.MemberID, "ffffffffffffffffffffffffffffffff", 1))},
		{name: "wildcard member id", contentType: form, body: []byte("event=ONCRMDEALUPDATE&auth%5Bmember_id%5D=%3E&auth%5Bapplication_token%5D=" + s.demo.Token)},
		{name: "subject injection in event", contentType: form, body: good("&event=ONCRM.DEAL.%3E")},
		{name: "NUL in event", contentType: form, body: []byte("event=ONCRM%00DEALUPDATE&ts=1" + auth)},
		{name: "space in event", contentType: form, body: []byte("event=ONCRM+DEALUPDATE&ts=1" + auth)},
		{name: "huge event name", contentType: form, body: []byte("event=" + strings.Repeat("A", 100<<10) + auth)},
		{name: "unknown route characters", path: "/bitrix24/events/a.b", contentType: form, body: []byte(valid)},
		{name: "route wildcard", path: "/bitrix24/events/%3E", contentType: form, body: []byte(valid)},
		{name: "GET", method: http.MethodGet, contentType: form},
		{name: "PUT", method: http.MethodPut, contentType: form, body: []byte(valid)},
		{name: "unknown path", path: "/bitrix24/event", contentType: form, body: []byte(valid)},
		{name: "on-premise without headers", path: "/onprem/v1/events", contentType: js, body: []byte(`{"installation":"x","events":[]}`)},
		{name: "on-premise not json", path: "/onprem/v1/events", contentType: form, body: []byte(valid)},
		{name: "on-premise GET", method: http.MethodGet, path: "/onprem/v1/events"},
	}
}

// forgedInstalls are ONAPPINSTALL bodies for portals nobody installed,
// pointing their endpoints at a host off the allow-list: the verifier
// refuses them (403) and past a small burst the ingress does not even ask
// it (429). Every one must get a 4xx and store nothing.
func forgedInstalls(n int) []badRequest {
	out := make([]badRequest, n)
	for i := range out {
		member := fmt.Sprintf("f0f0%028d", i)
		body := "event=ONAPPINSTALL&data%5BVERSION%5D=1&ts=1&auth%5Baccess_token%5D=forged&auth%5Brefresh_token%5D=forged" +
			"&auth%5Bclient_endpoint%5D=https%3A%2F%2Fevil.example.com%2Frest%2F&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F" +
			"&auth%5Bdomain%5D=evil.example.com&auth%5Bmember_id%5D=" + member + "&auth%5Bapplication_token%5D=forged-app-token"
		out[i] = badRequest{name: fmt.Sprintf("forged install %d", i), contentType: "application/x-www-form-urlencoded", body: []byte(body)}
	}
	return out
}

// mutations derives n hostile variants of valid by flipping, dropping and
// duplicating bytes, cutting it short and repeating parts (seeded, so a
// failure can be replayed). Any of them may still be a valid event; none
// may get a 5xx or a dropped connection.
func mutations(valid string, n int, seed uint64) []badRequest {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]badRequest, n)
	for i := range out {
		b := []byte(valid)
		for range 1 + r.IntN(8) {
			if len(b) == 0 {
				break
			}
			j := r.IntN(len(b))
			switch r.IntN(5) {
			case 0:
				b[j] ^= byte(1 + r.IntN(255))
			case 1:
				b = append(b[:j], b[j+1:]...)
			case 2:
				b = append(b[:j], append([]byte{b[j]}, b[j:]...)...)
			case 3:
				b = b[:j]
			case 4:
				k := j + r.IntN(len(b)-j)
				b = append(b[:k], append(append([]byte{}, b[j:k]...), b[k:]...)...)
			}
		}
		ct := "application/x-www-form-urlencoded"
		if r.IntN(4) == 0 {
			ct = "application/json"
		}
		out[i] = badRequest{name: fmt.Sprintf("mutation %d of seed %d", i, seed), contentType: ct, body: b}
	}
	return out
}

func (s *testStack) send(r badRequest) (int, string, error) {
	method, path := r.method, r.path
	if method == "" {
		method = http.MethodPost
	}
	if path == "" {
		path = "/bitrix24/events"
	}
	req, err := http.NewRequest(method, "http://"+s.ingress.Addr()+path, bytes.NewReader(r.body))
	if err != nil {
		return 0, "", err
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return resp.StatusCode, string(b), nil
}

// TestBadInputOnlyGets4xx sends the hostile corpus to the running stack:
// every answer is a 4xx (never a 5xx, a dropped connection or a crash) and
// nothing reaches the stream. Then it posts every documented event body
// from the fixtures, as the documentation has them (unknown portals: 403)
// and re-addressed to the demo portal (accepted or refused, never 5xx),
// and checks that none of the fixtures' tokens, nor the demo portal's
// application token, appears in any stream, in any database row or in the
// stack's log output.
func TestBadInputOnlyGets4xx(t *testing.T) {
	fixtures := loadFixtures(t)
	// Debug logging: the most a service ever logs about an event.
	s := startStack(t, stackOptions{env: stackEnv("B24HUB_LOG_LEVEL", "debug")})
	before := s.streamMsgs()

	for _, r := range s.badCorpus() {
		status, body, err := s.send(r)
		switch {
		case err != nil:
			t.Errorf("%s: %v (the ingress must answer, not drop the connection)", r.name, err)
		case status < 400 || status > 499:
			t.Errorf("%s: %d %s, want a 4xx", r.name, status, body)
		default:
			t.Logf("%-28s %d %s", r.name, status, strings.TrimSpace(body))
		}
	}
	if after := s.streamMsgs(); after != before {
		t.Fatalf("the bad corpus published %d messages", after-before)
	}

	// The documented bodies, as published (unknown portals) and for the
	// demo portal.
	var secrets []string
	for _, f := range fixtures {
		secrets = append(secrets, f.secrets...)
		for _, ct := range []string{"application/x-www-form-urlencoded", "application/json"} {
			for _, mine := range []bool{false, true} {
				body := f.encode(ct, mine, s.demo.MemberID, s.demo.Token, s.fake.Domain())
				status, answer, err := s.send(badRequest{contentType: ct, body: body})
				if err != nil || status >= 500 {
					t.Errorf("%s as %s (demo portal %v): %d %s %v", f.name, ct, mine, status, answer, err)
				}
				if !mine && status != http.StatusForbidden {
					t.Errorf("%s as %s for its own (unknown) portal: %d %s, want 403", f.name, ct, status, answer)
				}
				if mine {
					t.Logf("%-44s %-34s %d", f.name, ct, status)
				}
			}
		}
	}
	// Last, since past a small burst they exhaust this address's budget for
	// installs of unknown portals (the fixtures' ONAPPINSTALL would get 429).
	before = s.streamMsgs()
	for _, r := range forgedInstalls(12) {
		if status, body, err := s.send(r); err != nil || status < 400 || status > 499 {
			t.Errorf("%s: %d %s %v, want a 4xx", r.name, status, body, err)
		}
	}
	if after := s.streamMsgs(); after != before {
		t.Fatalf("forged installs published %d messages", after-before)
	}
	secrets = append(secrets, s.demo.Token)
	secrets = slices.Compact(slices.Sorted(slices.Values(secrets)))
	if len(secrets) < 5 {
		t.Fatalf("only %d secrets found in the fixtures", len(secrets))
	}
	// Let the ledger record what was accepted and deal-sync process it
	// (telephony and tasks retry lookups of the documents' made-up ids for
	// minutes; their outcomes so far are in the ledger), then look
	// everywhere.
	s.eventually("ledger and deal-sync caught up", 3*time.Minute, func() bool {
		return s.pending("monitor-ledger", "monitor-outcomes", "deal-sync") == 0
	})
	time.Sleep(time.Second)
	s.assertNoSecrets(secrets)
	// Random mutations of a valid body: a few hundred here, many more in
	// the chaos run. They may be accepted (a mutation can still be a valid
	// event); they must never get a 5xx or a dropped connection. They come
	// after the search for secrets: a mutation may rename a secret key (a
	// value under "auth[acces_token]" is not a secret by any rule) or copy
	// the application token into another value, which the search would
	// report although nothing real leaked.
	n := 300
	if chaos() {
		n = 20000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("mutations: %d from seed %d", n, seed)
	for _, r := range mutations(s.dealUpdate(2), n, seed) {
		status, body, err := s.send(r)
		if err != nil || status >= 500 {
			t.Fatalf("%s: %d %s %v (body %q)", r.name, status, body, err, r.body)
		}
	}

	s.checkRunners()
}

// streamMsgs counts the raw-event stream's messages.
func (s *testStack) streamMsgs() uint64 {
	s.t.Helper()
	str, err := s.js.Stream(context.Background(), "B24_EVENTS")
	if err != nil {
		s.t.Fatal(err)
	}
	info, err := str.Info(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	return info.State.Msgs
}

// assertNoSecrets searches every message of every stream (KV buckets
// included), every row of every table in the database and the log output.
func (s *testStack) assertNoSecrets(secrets []string) {
	s.t.Helper()
	found := func(where string, data []byte) {
		for _, sec := range secrets {
			if bytes.Contains(data, []byte(sec)) || bytes.Contains(data, []byte(hex.EncodeToString([]byte(sec)))) {
				s.t.Errorf("secret %s…%s found in %s", sec[:4], sec[len(sec)-2:], where)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Streams.
	js := s.js
	var streams, msgs int
	for name := range js.StreamNames(ctx).Name() {
		streams++
		c, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{})
		if err != nil {
			s.t.Fatal(err)
		}
		str, _ := js.Stream(ctx, name)
		info, _ := str.Info(ctx)
		for n := uint64(0); n < info.State.Msgs; n++ {
			m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
			if err != nil {
				break // purged or deleted meanwhile
			}
			msgs++
			var hdr bytes.Buffer
			for k, vs := range m.Headers() {
				fmt.Fprintf(&hdr, "%s: %s\n", k, strings.Join(vs, ","))
			}
			found("stream "+name+" subject "+m.Subject(), append(hdr.Bytes(), m.Data()...))
		}
	}

	// Every table, every row, rendered as text (bytea as hex: the hex form
	// of each secret is searched too).
	rows, err := s.db.Query(ctx, `SELECT table_schema, table_name FROM information_schema.tables
		WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_type = 'BASE TABLE'`)
	if err != nil {
		s.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var schema, table string
		_ = rows.Scan(&schema, &table)
		tables = append(tables, fmt.Sprintf("%q.%q", schema, table))
	}
	rows.Close()
	sort.Strings(tables)
	var rowCount int
	for _, tbl := range tables {
		rs, err := s.db.Query(ctx, `SELECT t::text FROM `+tbl+` t`)
		if err != nil {
			s.t.Fatalf("%s: %v", tbl, err)
		}
		for rs.Next() {
			var text string
			_ = rs.Scan(&text)
			rowCount++
			found("table "+tbl, []byte(text))
		}
		rs.Close()
	}

	found("the stack's log output", []byte(s.logs.String()))
	s.t.Logf("searched %d secrets in %d messages of %d streams, %d rows of %d tables and %d bytes of logs",
		len(secrets), msgs, streams, rowCount, len(tables), len(s.logs.String()))
	if msgs == 0 || rowCount == 0 {
		s.t.Error("nothing was searched")
	}
}

// fixture is one documented event body.
type fixture struct {
	name    string
	tree    map[string]any
	secrets []string
}

// loadFixtures reads the JSON renderings of documented bodies
// (libs/b24event/fixtures, part of the repository).
func loadFixtures(t *testing.T) []fixture {
	t.Helper()
	paths, err := fs.Glob(fixtures.FS(), "DOCS-*.json.txt")
	if err != nil {
		t.Fatal(err)
	}
	var out []fixture
	for _, p := range paths {
		raw, err := fixtures.Body(p)
		if err != nil {
			t.Fatal(err)
		}
		var tree map[string]any
		if err := json.Unmarshal(raw, &tree); err != nil {
			continue // a response example, not an event body
		}
		if _, ok := tree["event"]; !ok {
			continue
		}
		f := fixture{name: p, tree: tree}
		walk(tree, "", func(key, value string) {
			if b24event.IsSecretKey(key) && len(value) >= 16 && strings.Trim(value, "x") != "" {
				f.secrets = append(f.secrets, value)
			}
		})
		out = append(out, f)
	}
	if len(out) < 10 {
		t.Fatalf("only %d event fixtures in libs/b24event/fixtures", len(out))
	}
	return out
}

// walk calls f for every leaf with its PHP-bracket key.
func walk(v any, key string, f func(key, value string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			if key == "" {
				walk(c, k, f)
			} else {
				walk(c, key+"["+k+"]", f)
			}
		}
	case []any:
		for i, c := range t {
			walk(c, fmt.Sprintf("%s[%d]", key, i), f)
		}
	case string:
		f(key, t)
	case nil:
		f(key, "")
	default:
		f(key, fmt.Sprint(t))
	}
}

// encode renders the fixture as a form or JSON body; mine re-addresses it
// to the demo portal (member id, application token, domain).
func (f fixture) encode(contentType string, mine bool, member, token, domain string) []byte {
	tree := clone(f.tree).(map[string]any)
	if mine {
		if a, ok := tree["auth"].(map[string]any); ok {
			a["member_id"], a["application_token"], a["domain"] = member, token, domain
		}
	}
	if contentType == "application/json" {
		b, _ := json.Marshal(tree)
		return b
	}
	var pairs []string
	walk(tree, "", func(k, v string) { pairs = append(pairs, url.QueryEscape(k)+"="+url.QueryEscape(v)) })
	sort.Strings(pairs) // map order is random; the server must not care
	return []byte(strings.Join(pairs, "&"))
}

func clone(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, c := range t {
			m[k] = clone(c)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = clone(c)
		}
		return out
	}
	return v
}
