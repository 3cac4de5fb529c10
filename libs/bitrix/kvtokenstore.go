package bitrix

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KVTokenStore keeps tokens in a NATS KV bucket, one key per member_id, with
// KV revisions as TokenStore revisions. Values are sealed with an AEAD
// (e.g. AES-256-GCM) bound to the member_id, because stored OAuth
// credentials must not sit in plaintext (DESIGN non-negotiable 5).
type KVTokenStore struct {
	kv   jetstream.KeyValue
	aead cipher.AEAD
}

// NewKVTokenStore returns a store over kv. aead seals values; nil stores
// plaintext JSON, which is only acceptable in tests.
func NewKVTokenStore(kv jetstream.KeyValue, aead cipher.AEAD) (*KVTokenStore, error) {
	if kv == nil {
		return nil, errors.New("bitrix: KVTokenStore needs a KeyValue bucket")
	}
	return &KVTokenStore{kv: kv, aead: aead}, nil
}

var _ TokenStore = (*KVTokenStore)(nil)

// Load implements TokenStore.
func (s *KVTokenStore) Load(ctx context.Context, memberID string) (Token, uint64, error) {
	key := kvKey(memberID)
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Token{}, 0, ErrTokenNotFound
	}
	if err != nil {
		return Token{}, 0, fmt.Errorf("bitrix: token store get %s: %w", key, err)
	}
	plain, err := s.open(memberID, e.Value())
	if err != nil {
		return Token{}, 0, err
	}
	var t Token
	if err := json.Unmarshal(plain, &t); err != nil {
		return Token{}, 0, fmt.Errorf("bitrix: token store decode %s: %w", key, err)
	}
	return t, e.Revision(), nil
}

// CompareAndSwap implements TokenStore.
func (s *KVTokenStore) CompareAndSwap(ctx context.Context, memberID string, rev uint64, tok Token) (uint64, error) {
	key := kvKey(memberID)
	plain, err := json.Marshal(tok)
	if err != nil {
		return 0, err
	}
	val, err := s.seal(memberID, plain)
	if err != nil {
		return 0, err
	}
	var next uint64
	if rev == 0 {
		next, err = s.kv.Create(ctx, key, val)
	} else {
		next, err = s.kv.Update(ctx, key, val, rev)
	}
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrTokenConflict
	}
	if err != nil {
		return 0, fmt.Errorf("bitrix: token store put %s: %w", key, err)
	}
	return next, nil
}

func (s *KVTokenStore) seal(memberID string, plain []byte) ([]byte, error) {
	if s.aead == nil {
		return plain, nil
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(memberID)), nil
}

func (s *KVTokenStore) open(memberID string, val []byte) ([]byte, error) {
	if s.aead == nil {
		return val, nil
	}
	n := s.aead.NonceSize()
	if len(val) < n {
		return nil, errors.New("bitrix: token store: sealed value too short")
	}
	plain, err := s.aead.Open(nil, val[:n], val[n:], []byte(memberID))
	if err != nil {
		return nil, fmt.Errorf("bitrix: token store: cannot open value for %s (wrong key?): %w", memberID, err)
	}
	return plain, nil
}
