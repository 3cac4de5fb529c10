package credentials_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
	"github.com/b24hub/b24hub/services/subscriptions/internal/credentials"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, credentials.KeySize) }

func TestCipher(t *testing.T) {
	c, err := credentials.NewCipher(key(1))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := c.Seal("m1", []byte("refresh-secret"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("refresh-secret")) {
		t.Fatal("plaintext visible in sealed value")
	}
	if pt, err := c.Open("m1", sealed); err != nil || string(pt) != "refresh-secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, tc := range map[string]struct {
		member string
		val    []byte
	}{
		"other member": {"m2", sealed},
		"tampered":     {"m1", tampered},
		"short":        {"m1", sealed[:3]},
		"empty":        {"m1", nil},
	} {
		if _, err := c.Open(tc.member, tc.val); !errors.Is(err, credentials.ErrDecrypt) {
			t.Errorf("%s: err = %v, want ErrDecrypt", name, err)
		}
	}
	other, _ := credentials.NewCipher(key(2))
	if _, err := other.Open("m1", sealed); !errors.Is(err, credentials.ErrDecrypt) {
		t.Errorf("wrong key: err = %v", err)
	}
	rotated, _ := credentials.NewCipher(key(2), key(1))
	if pt, err := rotated.Open("m1", sealed); err != nil || string(pt) != "refresh-secret" {
		t.Errorf("rotated key cannot open old value: %v", err)
	}
}

func TestParseKey(t *testing.T) {
	for s, ok := range map[string]bool{
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=": true,
		"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE":  true,
		"AQID": false, "not base64!": false, "": false,
	} {
		if _, err := credentials.ParseKey(s); (err == nil) != ok {
			t.Errorf("ParseKey(%q) err = %v", s, err)
		}
	}
}

func TestStoreCAS(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, eventbus.BucketTokens)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := credentials.NewCipher(key(7))
	s := credentials.NewStore(kv, c)
	if _, _, err := s.Load(ctx, "m1"); !errors.Is(err, bitrix.ErrTokenNotFound) {
		t.Fatalf("Load of nothing: %v", err)
	}
	tok := bitrix.Token{AccessToken: "a1", RefreshToken: "r1", MemberID: "m1"}
	rev, err := s.CompareAndSwap(ctx, "m1", 0, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwap(ctx, "m1", 0, tok); !errors.Is(err, bitrix.ErrTokenConflict) {
		t.Fatalf("second create: %v", err)
	}
	tok.AccessToken = "a2"
	rev2, err := s.CompareAndSwap(ctx, "m1", rev, tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CompareAndSwap(ctx, "m1", rev, tok); !errors.Is(err, bitrix.ErrTokenConflict) {
		t.Fatalf("stale update: %v", err)
	}
	got, gotRev, err := s.Load(ctx, "m1")
	if err != nil || got.AccessToken != "a2" || gotRev != rev2 {
		t.Fatalf("Load = %+v %d %v", got, gotRev, err)
	}
	raw, _ := kv.Get(ctx, "m1")
	if bytes.Contains(raw.Value(), []byte("r1")) || bytes.Contains(raw.Value(), []byte("a2")) {
		t.Fatal("token stored in plaintext")
	}
	if err := s.Delete(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, "m1"); ok {
		t.Fatal("deleted credentials still there")
	}
	if _, err := s.CompareAndSwap(ctx, "m1", 0, tok); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
}
