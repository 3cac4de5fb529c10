package bitrixport_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/bitrix/bitrixport"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
)

func TestClassify(t *testing.T) {
	spec := consumer.Spec{Durable: "x", FilterSubjects: []string{"x"}}.WithDefaults()
	for _, tt := range []struct {
		err  error
		verb consumer.Verb
		kind string
		// portal is the UnavailableError's Portal: a portal's outage
		// holds only that portal's messages.
		portal string
	}{
		// The portal's limits and outages are not the event's fault: wait.
		{&bitrix.Error{Status: 503, Code: bitrix.CodeOverloadLimit, Portal: "m1"}, consumer.VerbWait, eventbus.ErrorKindOverload, "m1"},
		{&bitrix.Error{Status: 503, Code: bitrix.CodeQueryLimitExceeded, Portal: "m1"}, consumer.VerbWait, eventbus.ErrorKindQueryLimit, "m1"},
		{&bitrix.Error{Status: 429, Code: bitrix.CodeOperationTimeLimit, Portal: "m1"}, consumer.VerbWait, eventbus.ErrorKindOperationLimit, "m1"},
		{&bitrix.Error{Status: 503, Description: "<html>Service Unavailable</html>", Portal: "m2"}, consumer.VerbWait, eventbus.ErrorKindTransient, "m2"},
		{&bitrix.Error{Err: errors.New("dial tcp: connection refused"), Portal: "m2"}, consumer.VerbWait, eventbus.ErrorKindTransient, "m2"},
		// The shared limiter (NATS KV) failed before the portal was asked:
		// the whole consumer waits, it is no portal's outage.
		{limiterError(t, errors.New("nats: timeout")), consumer.VerbWait, eventbus.ErrorKindLimiter, ""},
		// Described like the limiter's but from elsewhere: the portal's.
		{&bitrix.Error{Description: "waiting for the rate limiter", Err: errors.New("nats: timeout"), Portal: "m1"}, consumer.VerbWait, eventbus.ErrorKindTransient, "m1"},
		// No portal named: the whole consumer waits, as for a database.
		{&bitrix.Error{Status: 502}, consumer.VerbWait, eventbus.ErrorKindTransient, ""},
		{&bitrix.Error{Status: 400, Code: bitrix.CodeInvalidGrant}, consumer.VerbDead, eventbus.ErrorKindReauthorize, ""},
		{&bitrix.Error{Status: 401, Code: "INVALID_CREDENTIALS"}, consumer.VerbDead, eventbus.ErrorKindAuth, ""},
		// Still expired after the client's refreshes: a rotation race, retried.
		{&bitrix.Error{Status: 401, Code: bitrix.CodeExpiredToken}, consumer.VerbNak, eventbus.ErrorKindAuth, ""},
		{&bitrix.Error{Status: 401, Code: bitrix.CodeInvalidToken}, consumer.VerbNak, eventbus.ErrorKindAuth, ""},
		{&bitrix.Error{Status: 400, Code: "ERROR_CORE", Description: "bad"}, consumer.VerbDead, eventbus.ErrorKindPermanent, ""},
		{errors.New("plain"), consumer.VerbNak, consumer.KindTransient, ""},
	} {
		err := bitrixport.Classify(tt.err)
		act := consumer.Decide(spec, consumer.Attempt{Delivery: 1}, err)
		if act.Verb != tt.verb || act.Kind != tt.kind {
			t.Errorf("%v: %s %q, want %s %q", tt.err, act.Verb, act.Kind, tt.verb, tt.kind)
		}
		var u *consumer.UnavailableError
		if errors.As(err, &u) && u.Portal != tt.portal {
			t.Errorf("%v: unavailable for portal %q, want %q", tt.err, u.Portal, tt.portal)
		}
	}
	var u *consumer.UnavailableError
	if err := bitrixport.Classify(limiterError(t, context.DeadlineExceeded)); !errors.As(err, &u) || u.Dependency != consumer.DependencyNATS {
		t.Errorf("limiter wait: %v, want unavailable %q", err, consumer.DependencyNATS)
	}
	if bitrixport.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

// failingLimiter is a shared limiter whose store does not answer.
type failingLimiter struct{ err error }

func (l failingLimiter) Wait(context.Context, string, bitrix.Rate) error { return l.err }
func (l failingLimiter) Saturated(context.Context, string, bitrix.Rate) error {
	return l.err
}

// limiterError is what a client returns when its limiter fails with
// cause: no request is sent (the webhook's host does not exist).
func limiterError(t *testing.T, cause error) error {
	t.Helper()
	c, err := bitrix.New(bitrix.Config{WebhookURL: "https://portal.invalid/rest/1/code/", MemberID: "m1"},
		bitrix.WithLimiter(failingLimiter{cause}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDeal(context.Background(), 1)
	if !errors.Is(err, bitrix.KindLimiter) || !errors.Is(err, cause) || !strings.HasSuffix(err.Error(), cause.Error()) {
		t.Fatalf("limiter failing with %v: client returned %v, want a limiter error naming its cause", cause, err)
	}
	return err
}

// TestErrorKindVocabulary: every kind of the bitrix client has its own
// name in the platform vocabulary (eventbus.ErrorKinds), the names the
// monitor's alert rules accept.
func TestErrorKindVocabulary(t *testing.T) {
	seen := map[string]bitrix.Kind{}
	for k := bitrix.Kind(1); k < 255; k++ {
		if strings.HasPrefix(k.String(), "kind(") {
			continue // not a kind the client defines
		}
		name := bitrixport.ErrorKind(k)
		if !eventbus.IsErrorKind(name) {
			t.Errorf("bitrix kind %v maps to %q, not in eventbus.ErrorKinds %v", k, name, eventbus.ErrorKinds())
		}
		if other, dup := seen[name]; dup {
			t.Errorf("bitrix kinds %v and %v both map to %q", other, k, name)
		}
		seen[name] = k
	}
	if got := bitrixport.ErrorKind(bitrix.Kind(200)); got != eventbus.ErrorKindTransient {
		t.Errorf("unknown kind maps to %q", got)
	}
}

func TestRegistryClients(t *testing.T) {
	reg := portals.NewRegistry()
	const member = "a223c6b3710f85df22e9377d6c4f7553"
	if err := reg.Put(portals.SourceFile, portals.Portal{MemberID: member, TokenSHA256: portals.HashToken("t"),
		WebhookURL: "https://p.bitrix24.test/rest/1/abc/", Active: true, Source: portals.SourceFile}); err != nil {
		t.Fatal(err)
	}
	rc := bitrixport.NewRegistryClients(reg)
	c1, err := rc.ClientFor(context.Background(), member)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := rc.ClientFor(context.Background(), member)
	if c1 != c2 {
		t.Error("client not reused")
	}
	if _, err := rc.ClientFor(context.Background(), "unknown"); !errors.Is(err, bitrixport.ErrNoCredentials) || !errors.Is(err, consumer.ErrPermanent) {
		t.Errorf("unknown portal: %v", err)
	}
}

type lookup map[string]portals.Portal

func (l lookup) Lookup(id string) (portals.Portal, bool) { p, ok := l[id]; return p, ok }

// TestAppInstalledAndForget covers what the subscriptions service asks of
// the clients: which portals it can call as the application, and building
// a new client after a reinstall replaced the tokens.
func TestAppInstalledAndForget(t *testing.T) {
	ctx := context.Background()
	tokens := &bitrix.MemoryTokenStore{}
	tokens.Put("app", bitrix.Token{AccessToken: "a", RefreshToken: "r", ClientEndpoint: "https://a.bitrix24.com/rest/", MemberID: "app"})
	tokens.Put("gone", bitrix.Token{AccessToken: "a"})
	reg := lookup{
		"hook":   {MemberID: "hook", WebhookURL: "https://h.bitrix24.com/rest/1/code/", Active: true},
		"app":    {MemberID: "app", Active: true, Plan: "enterprise", ClientEndpoint: "https://a.bitrix24.com/rest/"},
		"gone":   {MemberID: "gone", Active: false, ClientEndpoint: "https://g.bitrix24.com/rest/"},
		"nocred": {MemberID: "nocred", Active: true, ClientEndpoint: "https://n.bitrix24.com/rest/"},
	}
	rc, err := bitrixport.NewOAuthRegistryClients(reg, bitrixport.OAuthApp{ClientID: "id", ClientSecret: "s", Tokens: tokens})
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]bool{"hook": false, "app": true, "gone": false, "nocred": false, "unknown": false} {
		if got := rc.AppInstalled(ctx, id); got != want {
			t.Errorf("AppInstalled(%s) = %v, want %v", id, got, want)
		}
	}
	c, err := rc.ClientFor(ctx, "app")
	if err != nil || c.Portal() != "app" {
		t.Fatalf("ClientFor(app) = %v, %v", c, err)
	}
	if again, _ := rc.ClientFor(ctx, "app"); again != c {
		t.Error("client not kept")
	}
	rc.Forget("app")
	if again, _ := rc.ClientFor(ctx, "app"); again == c {
		t.Error("Forget kept the client")
	}
	if _, err := rc.ClientFor(ctx, "nocred"); !errors.Is(err, bitrixport.ErrNoCredentials) || !errors.Is(err, consumer.ErrPermanent) {
		t.Errorf("installed portal without tokens: %v", err)
	}
	// Without the application's credentials no installed portal is
	// callable, and saying so is permanent.
	webhookOnly := bitrixport.NewRegistryClients(reg)
	if webhookOnly.AppInstalled(ctx, "app") {
		t.Error("AppInstalled without application credentials")
	}
	if _, err := webhookOnly.ClientFor(ctx, "app"); !errors.Is(err, bitrixport.ErrNoCredentials) {
		t.Errorf("installed portal without application credentials: %v", err)
	}
}
