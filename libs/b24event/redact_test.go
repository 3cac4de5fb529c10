package b24event

import (
	"reflect"
	"strings"
	"testing"
)

func TestIsSecretKey(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"auth[access_token]", true},
		{"auth[refresh_token]", true},
		{"auth[application_token]", true},
		{"auth[client_secret]", true},
		{"data[BOT][567][AUTH][access_token]", true},
		{"data[BOT][567][access_token]", true},
		{"data[BOT][567][application_token]", true},
		{"data[X][ACCESS_TOKEN]", true},
		{"data[X][Token]", true},
		{"data[X][CLIENT_SECRET]", true},
		{"data[refresh_token][0]", true}, // a secret array: every element
		{"access_token", true},
		{"token", true},
		{"client_secret", true},
		{"auth[domain]", false},
		{"auth[member_id]", false},
		{"auth[client_endpoint]", false},
		{"auth[client_id]", false},
		{"auth[expires]", false},
		{"auth[scope]", false},
		{"data[X][tokens]", false},
		{"data[X][token_type]", false},
		{"data[X][secret]", true},
		{"data[X][client_secret_hint]", true},
		{"data[X][SecretAnswer]", true},
		{"data[FIELDS][UF_CRM_PASSWORD]", true},
		{"data[X][password_confirm]", true},
		{"AUTH_ID", true},    // placement and embedded-app call: an access token
		{"REFRESH_ID", true}, // ... and its refresh token
		{"auth_id", true},
		{"APP_SID", true}, // the application's session id
		{"PLACEMENT_OPTIONS[ID]", false},
		{"AUTH_EXPIRES", false},
		{"data[FIELDS][SECRETARY_ID]", true}, // a false positive the name rule accepts
		{"data[FIELDS][AUTHOR_ID]", false},
		{"data[FIELDS][PASS]", false},
		{"", false},
		{"oken", false},
	}
	for _, tt := range tests {
		if got := IsSecretKey(tt.key); got != tt.want {
			t.Errorf("IsSecretKey(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestRedactedForm(t *testing.T) {
	b, err := Decode(ContentTypeForm, EncodeForm(dealUpdate), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b.Redacted())
	want := "event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=759&ts=1736405807" +
		"&auth%5Bexpires%5D=1736409407&auth%5Bexpires_in%5D=3600&auth%5Bscope%5D=crm" +
		"&auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F" +
		"&auth%5Bstatus%5D=F&auth%5Bclient_endpoint%5D=https%3A%2F%2Fsome-domain.bitrix24.com%2Frest%2F" +
		"&auth%5Bmember_id%5D=a223c6b3710f85df22e9377d6c4f7553&auth%5Buser_id%5D=1"
	if got != want {
		t.Errorf("Redacted() =\n%s\nwant\n%s", got, want)
	}
	wantTree := m{
		"event": "ONCRMDEALUPDATE", "event_handler_id": "201", "ts": "1736405807",
		"data": m{"FIELDS": m{"ID": "759"}},
		"auth": m{"expires": "1736409407", "expires_in": "3600", "scope": "crm", "domain": "some-domain.bitrix24.com",
			"server_endpoint": "https://oauth.bitrix.info/rest/", "status": "F",
			"client_endpoint": "https://some-domain.bitrix24.com/rest/", "member_id": "a223c6b3710f85df22e9377d6c4f7553", "user_id": "1"},
	}
	rt := b.RedactedTree()
	if !reflect.DeepEqual(rt, map[string]any(wantTree)) {
		t.Errorf("RedactedTree() = %v", rt)
	}
	// The redacted tree is a copy: changing it leaves the body alone.
	rt["data"].(map[string]any)["FIELDS"].(map[string]any)["ID"] = "x"
	if b.Tree["data"].(map[string]any)["FIELDS"].(map[string]any)["ID"] != "759" {
		t.Error("RedactedTree aliases Tree")
	}
	if b.Tree["auth"].(map[string]any)["access_token"] == nil {
		t.Error("redaction modified Tree")
	}
}

func TestRedactedJSON(t *testing.T) {
	body := `{"event":"ONIMBOTMESSAGEADD","data":{"BOT":{"567":{"access_token":"S1","AUTH":{"refresh_token":"S2","domain":"d"},"BOT_ID":567}},` +
		`"L":["a","b"],"PARAMS":{"MESSAGE":"he said \"hi\"\n"}},"ts":1,"auth":{"application_token":"S3","member_id":"m","ok":true}}`
	b, err := Decode(ContentTypeJSON, []byte(body), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := string(b.Redacted())
	want := `{"event":"ONIMBOTMESSAGEADD","data":{"BOT":{"567":{"AUTH":{"domain":"d"},"BOT_ID":"567"}},"L":{"0":"a","1":"b"},` +
		`"PARAMS":{"MESSAGE":"he said \"hi\"\n"}},"ts":"1","auth":{"member_id":"m","ok":"1"}}`
	if got != want {
		t.Errorf("Redacted() =\n%s\nwant\n%s", got, want)
	}
	rb, err := Decode(ContentTypeJSON, []byte(got), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rb.Tree, b.RedactedTree()) {
		t.Errorf("decoded Redacted() = %v, want %v", rb.Tree, b.RedactedTree())
	}
}

// TestRedactedInterleaved: repeated and conflicting keys must survive the
// JSON re-nesting as the same pairs.
func TestRedactedInterleaved(t *testing.T) {
	for _, body := range []string{
		`a[x]=1&b=2&a[y]=3&a=4&a[z][w]=5&a[z][token]=s&a[z]=6&c[]=7&c[]=8&d[e][f]=9&d[e]=10&d[g]=11`,
		`a=1&a[token]=s`,
		`a[token]=s&a=1`,
		`x[token][y]=s`,
		``,
		`token=s`,
		// Removing the secret shifts the appends so that the full array is
		// a different one.
		`a[][token]=s&a[][9223372036854775807]=x&a[0][]=y`,
	} {
		b, err := Decode(ContentTypeForm, []byte(body), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range []string{ContentTypeForm, ContentTypeJSON} {
			b.ContentType = ct
			red := b.Redacted()
			rb, err := Decode(ct, red, Limits{})
			if err != nil {
				t.Fatalf("%s %q: %v", ct, red, err)
			}
			if strings.Contains(string(red), "token") {
				t.Errorf("%s %q: secret kept", ct, red)
			}
			if !reflect.DeepEqual(rb.Tree, b.RedactedTree()) {
				t.Errorf("%s %q: decoded %v, RedactedTree %v", ct, red, rb.Tree, b.RedactedTree())
			}
		}
	}
}

func TestRedactedHandMade(t *testing.T) {
	b := &Body{Fields: []Field{{"a", "1"}, {"auth[access_token]", "s"}, {"bad[", "x"}, {"b[c]", "2"}}}
	if got := string(b.Redacted()); got != "a=1&bad%5B=x&b%5Bc%5D=2" {
		t.Errorf("Redacted() = %q", got)
	}
	if got := b.RedactedTree(); !reflect.DeepEqual(got, map[string]any{"a": "1", "b": map[string]any{"c": "2"}}) {
		t.Errorf("RedactedTree() = %v (invalid keys must be skipped)", got)
	}
	tb := &Body{Tree: map[string]any{"a": "1", "auth": map[string]any{"access_token": "s", "member_id": "m"}}}
	if got := tb.RedactedTree(); !reflect.DeepEqual(got, map[string]any{"a": "1", "auth": map[string]any{"member_id": "m"}}) {
		t.Errorf("RedactedTree() of a tree-only Body = %v", got)
	}
	if got := (&Body{}).Redacted(); len(got) != 0 {
		t.Errorf("empty Body Redacted() = %q", got)
	}
	if got := (&Body{ContentType: ContentTypeJSON}).Redacted(); string(got) != "{}" {
		t.Errorf("empty JSON Body Redacted() = %q", got)
	}
}

// secretSegmentOracle is the rule of IsSecretKey written plainly, for
// FuzzIsSecretKey to hold the hot-path version to.
func secretSegmentOracle(s string) bool {
	// The hot path folds ASCII letters only, so the oracle does too
	// (strings.ToLower would also fold other scripts).
	l := asciiLower(s)
	switch {
	case strings.HasSuffix(l, "token"), strings.Contains(l, "secret"), strings.Contains(l, "password"):
		return true
	}
	return l == "auth_id" || l == "refresh_id" || l == "app_sid"
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// FuzzIsSecretKey holds the allocation-free segment check to the plain rule,
// and checks that every credential name Bitrix24 uses is caught in any
// letter case at any depth.
func FuzzIsSecretKey(f *testing.F) {
	for _, s := range []string{"access_token", "AUTH_ID", "Refresh_Id", "app_sid", "client_SECRET_x", "UF_PASSWORD", "ID", "FIELDS", "tokenx", "sekret", "passwor"} {
		f.Add(s, uint8(0))
	}
	names := []string{"access_token", "refresh_token", "application_token", "client_secret", "AUTH_ID", "REFRESH_ID", "APP_SID", "password"}
	f.Fuzz(func(t *testing.T, seg string, pick uint8) {
		if strings.ContainsAny(seg, "[]") {
			return
		}
		if got, want := isSecretSegment(seg), secretSegmentOracle(seg); got != want {
			t.Fatalf("isSecretSegment(%q) = %v, the rule says %v", seg, got, want)
		}
		// A known credential name, its letters' case flipped by pick's bits,
		// nested under seg, is always a secret.
		name := []byte(names[int(pick)%len(names)])
		for i := range name {
			if pick&(1<<(i%8)) != 0 && ('a' <= name[i]|0x20 && name[i]|0x20 <= 'z') {
				name[i] ^= 0x20
			}
		}
		for _, key := range []string{string(name), "data[" + seg + "][" + string(name) + "]", "auth[" + string(name) + "]"} {
			if !IsSecretKey(key) {
				t.Fatalf("IsSecretKey(%q) = false", key)
			}
		}
	})
}
