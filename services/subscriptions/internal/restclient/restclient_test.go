package restclient

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/portals"
)

type lookup map[string]portals.Portal

func (l lookup) Lookup(id string) (portals.Portal, bool) { p, ok := l[id]; return p, ok }

func TestFactory(t *testing.T) {
	ctx := context.Background()
	tokens := &bitrix.MemoryTokenStore{}
	tokens.Put("app", bitrix.Token{AccessToken: "a", RefreshToken: "r", ClientEndpoint: "https://a.bitrix24.com/rest/", MemberID: "app"})
	tokens.Put("gone", bitrix.Token{AccessToken: "a"})
	reg := lookup{
		"hook":   {MemberID: "hook", WebhookURL: "https://h.bitrix24.com/rest/1/code/", Active: true},
		"app":    {MemberID: "app", Active: true, Plan: "enterprise"},
		"gone":   {MemberID: "gone", Active: false},
		"nocred": {MemberID: "nocred", Active: true},
	}
	f := New(Config{ClientID: "id", ClientSecret: "s"}, reg, tokens, slog.New(slog.DiscardHandler))
	for id, want := range map[string]bool{"hook": false, "app": true, "gone": false, "nocred": false, "unknown": false} {
		if got := f.OAuth(ctx, id); got != want {
			t.Errorf("OAuth(%s) = %v, want %v", id, got, want)
		}
	}
	for _, id := range []string{"hook", "app"} {
		c, err := f.Client(ctx, id)
		if err != nil || c.Portal() != id {
			t.Fatalf("Client(%s) = %v, %v", id, c, err)
		}
		if again, _ := f.Client(ctx, id); again != c {
			t.Errorf("Client(%s) not cached", id)
		}
	}
	c, _ := f.Client(ctx, "app")
	f.Forget("app")
	if again, _ := f.Client(ctx, "app"); again == c {
		t.Error("Forget kept the client")
	}
	if _, err := f.Client(ctx, "nocred"); !errors.Is(err, ErrNoRoute) {
		t.Errorf("no credentials: %v", err)
	}
	if _, err := f.Client(ctx, "unknown"); err == nil {
		t.Error("unknown portal got a client")
	}
	noSecret := New(Config{}, reg, tokens, slog.New(slog.DiscardHandler))
	if _, err := noSecret.Client(ctx, "app"); !errors.Is(err, ErrNoAppCredentials) {
		t.Errorf("missing app credentials: %v", err)
	}
}
