package bitrixport_test

import (
	"context"
	"errors"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/consumer"
	"github.com/b24hub/b24hub/libs/consumer/bitrixport"
	"github.com/b24hub/b24hub/libs/portals"
)

func TestClassify(t *testing.T) {
	spec := consumer.Spec{Durable: "x", FilterSubjects: []string{"x"}}.WithDefaults()
	for _, tt := range []struct {
		err  error
		verb consumer.Verb
		kind string
	}{
		{&bitrix.Error{Status: 503, Code: bitrix.CodeOverloadLimit}, consumer.VerbNak, "overload"},
		{&bitrix.Error{Status: 503, Code: bitrix.CodeQueryLimitExceeded}, consumer.VerbNak, "query_limit"},
		{&bitrix.Error{Status: 400, Code: bitrix.CodeInvalidGrant}, consumer.VerbDead, "reauthorize"},
		{&bitrix.Error{Status: 401, Code: "INVALID_CREDENTIALS"}, consumer.VerbDead, "auth"},
		{&bitrix.Error{Status: 400, Code: "ERROR_CORE", Description: "bad"}, consumer.VerbDead, "permanent"},
		{&bitrix.Error{Status: 502}, consumer.VerbNak, "transient"},
		{errors.New("plain"), consumer.VerbNak, consumer.KindTransient},
	} {
		act := consumer.Decide(spec, consumer.Attempt{Delivery: 1}, bitrixport.Classify(tt.err))
		if act.Verb != tt.verb || act.Kind != tt.kind {
			t.Errorf("%v: %s %q, want %s %q", tt.err, act.Verb, act.Kind, tt.verb, tt.kind)
		}
	}
	if bitrixport.Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
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
