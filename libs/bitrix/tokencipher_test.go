package bitrix_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/natstest"
)

func tokenKey(b byte) []byte { return bytes.Repeat([]byte{b}, bitrix.TokenKeySize) }

func TestTokenCipher(t *testing.T) {
	c, err := bitrix.NewTokenCipher(tokenKey(1))
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
	other, _ := bitrix.NewTokenCipher(tokenKey(2))
	for _, tt := range []struct {
		name   string
		c      *bitrix.TokenCipher
		member string
		val    []byte
	}{
		{"other member", c, "m2", sealed},
		{"tampered", c, "m1", tampered},
		{"short", c, "m1", sealed[:3]},
		{"empty", c, "m1", nil},
		{"wrong key", other, "m1", sealed},
	} {
		if _, err := tt.c.Open(tt.member, tt.val); !errors.Is(err, bitrix.ErrTokenDecrypt) {
			t.Errorf("%s: err = %v, want ErrTokenDecrypt", tt.name, err)
		}
	}
	rotated, _ := bitrix.NewTokenCipher(tokenKey(2), tokenKey(1))
	if pt, err := rotated.Open("m1", sealed); err != nil || string(pt) != "refresh-secret" {
		t.Errorf("rotated key cannot open old value: %v", err)
	}
	if _, err := bitrix.NewTokenCipher([]byte("short")); err == nil {
		t.Error("short key accepted")
	}
}

// TestTokenCipherReadsStoredInstalls opens a value sealed by the
// subscriptions service's own cipher before it moved here: installs stored
// in B24_TOKENS by earlier releases must stay readable.
func TestTokenCipherReadsStoredInstalls(t *testing.T) {
	const golden = "AUidBdwmV3fsp7r9szSpM+oTKgS2E+7dqSVRyPw8rMTI1GrBeQLKUXjPJOvOnRGxRIe5Sx9nvtZktx/45SsfItVF6cdaM3UarjVuG3t7XWHeovHW20a1boXN06Sni2cX1Cxh8L8iu79QQAYx00Hj8+8VPXLp0AlTqmmoMTlODj3iPbEGTLtaB5vMZ9dGMP+dXQ=="
	sealed, _ := base64.StdEncoding.DecodeString(golden)
	c, _ := bitrix.NewTokenCipher(tokenKey(7))
	pt, err := c.Open("a223c6b3710f85df22e9377d6c4f7553", sealed)
	if err != nil || !strings.Contains(string(pt), `"refresh_token":"golden-refresh"`) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
}

func TestParseTokenKey(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=", true}, // std, padded
		{"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", true},  // raw
		{" AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n", true},
		{"_-8BAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE", true}, // URL alphabet
		{"AQID", false},        // 3 bytes
		{"not base64!", false}, // not base64
		{"", false},
	} {
		k, err := bitrix.ParseTokenKey(tt.in)
		if (err == nil) != tt.ok || (tt.ok && len(k) != bitrix.TokenKeySize) {
			t.Errorf("ParseTokenKey(%q) = %d bytes, %v", tt.in, len(k), err)
		}
		if err != nil && strings.Contains(err.Error(), tt.in) && tt.in != "" {
			t.Errorf("error repeats the key: %v", err)
		}
	}
}

// TestKVTokenStoreSealed runs the store on the platform bucket with the
// platform cipher: compare-and-swap, install overwrite, uninstall, and what
// sits in the bucket.
func TestKVTokenStoreSealed(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	_, js := srv.JetStream(t)
	kv := platformBucket(t, js, eventbus.BucketTokens, "")
	c, _ := bitrix.NewTokenCipher(tokenKey(7))
	s, err := bitrix.NewKVTokenStore(kv, c)
	if err != nil {
		t.Fatal(err)
	}
	tokenStoreContract(t, s)

	const member = "a223c6b3710f85df22e9377d6c4f7553"
	if err := s.Put(ctx, member, bitrix.Token{AccessToken: "a1", RefreshToken: "r1", MemberID: member}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, member, bitrix.Token{AccessToken: "a2", RefreshToken: "r2", MemberID: member}); err != nil {
		t.Fatal(err) // a reinstall overwrites
	}
	tok, rev, err := s.Load(ctx, member)
	if err != nil || tok.AccessToken != "a2" || rev == 0 {
		t.Fatalf("Load = %+v %d %v", tok, rev, err)
	}
	raw, err := kv.Get(ctx, member) // the key is the member_id itself
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Value(), []byte("r2")) || bytes.Contains(raw.Value(), []byte("a2")) {
		t.Fatal("token stored in plaintext")
	}
	// A value moved under another portal's key does not open.
	if _, err := kv.Put(ctx, "m-other", raw.Value()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Load(ctx, "m-other"); !errors.Is(err, bitrix.ErrTokenDecrypt) {
		t.Fatalf("moved value: %v", err)
	}
	// Another service with another key cannot read it, and says why.
	wrong, _ := bitrix.NewKVTokenStore(kv, mustCipher(t, tokenKey(8)))
	if _, _, err := wrong.Load(ctx, member); !errors.Is(err, bitrix.ErrTokenDecrypt) || !strings.Contains(err.Error(), "B24HUB_CREDENTIALS_OLD_KEYS") {
		t.Fatalf("wrong key: %v", err)
	}
	if err := s.Delete(ctx, member); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, member); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	if _, _, err := s.Load(ctx, member); !errors.Is(err, bitrix.ErrTokenNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := s.CompareAndSwap(ctx, member, 0, tok); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	if _, _, err := s.Load(ctx, "bad key*"); err == nil {
		t.Fatal("invalid member_id accepted as a key")
	}
}

func mustCipher(t *testing.T, key []byte) *bitrix.TokenCipher {
	t.Helper()
	c, err := bitrix.NewTokenCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
