package bitrix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
)

// KVTokenStore keeps tokens in a NATS KV bucket, one key per member_id, with
// KV revisions as TokenStore revisions, so CompareAndSwap is atomic across
// every replica of every service. Values are sealed by a [TokenSealer]
// bound to the member_id, because stored OAuth credentials must not sit in
// plaintext (DESIGN non-negotiable 5).
//
// The platform's bucket is eventbus.BucketTokens ("B24_TOKENS"), provisioned
// by eventbus.Provision: the subscriptions service writes a portal's tokens
// there on install, and every service calling the portal reads and
// refreshes them there. The key is the member_id itself and the value a
// [TokenCipher] seal of the Token's JSON; the layout is shared by every
// service, so change it only with a migration.
type KVTokenStore struct {
	kv     jetstream.KeyValue
	sealer TokenSealer
}

// NewKVTokenStore returns a store over kv. sealer encrypts values (use a
// [*TokenCipher]); nil stores plaintext JSON, which is only acceptable in
// tests.
func NewKVTokenStore(kv jetstream.KeyValue, sealer TokenSealer) (*KVTokenStore, error) {
	if kv == nil {
		return nil, errors.New("bitrix: KVTokenStore needs a KeyValue bucket")
	}
	return &KVTokenStore{kv: kv, sealer: sealer}, nil
}

var _ TokenStore = (*KVTokenStore)(nil)

// validTokenKey is what a NATS KV key may be; member_ids are hex.
var validTokenKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func tokenKeyOf(memberID string) (string, error) {
	if !validTokenKey.MatchString(memberID) {
		return "", fmt.Errorf("bitrix: token store: member_id %q is not a valid key", memberID)
	}
	return memberID, nil
}

// Load implements TokenStore. A value the sealer cannot open fails with an
// error wrapping ErrTokenDecrypt.
func (s *KVTokenStore) Load(ctx context.Context, memberID string) (Token, uint64, error) {
	key, err := tokenKeyOf(memberID)
	if err != nil {
		return Token{}, 0, err
	}
	e, err := s.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Token{}, 0, ErrTokenNotFound
	}
	if err != nil {
		return Token{}, 0, fmt.Errorf("bitrix: token store get %s: %w", key, err)
	}
	plain, err := s.open(memberID, e.Value())
	if err != nil {
		return Token{}, 0, fmt.Errorf("bitrix: token store get %s: %w", key, err)
	}
	var t Token
	if err := json.Unmarshal(plain, &t); err != nil {
		return Token{}, 0, fmt.Errorf("bitrix: token store decode %s: %w", key, err)
	}
	return t, e.Revision(), nil
}

// CompareAndSwap implements TokenStore: rev 0 creates, any other revision
// updates only while it is still the current one.
func (s *KVTokenStore) CompareAndSwap(ctx context.Context, memberID string, rev uint64, tok Token) (uint64, error) {
	key, val, err := s.sealed(memberID, tok)
	if err != nil {
		return 0, err
	}
	var next uint64
	if rev == 0 {
		next, err = s.kv.Create(ctx, key, val)
	} else {
		next, err = s.kv.Update(ctx, key, val, rev)
	}
	if isRevisionConflict(err) {
		return 0, ErrTokenConflict
	}
	if err != nil {
		return 0, fmt.Errorf("bitrix: token store put %s: %w", key, err)
	}
	return next, nil
}

// Put stores tok unconditionally: an install (ONAPPINSTALL) replaces
// whatever was stored, since Bitrix24 has just issued a fresh token pair.
func (s *KVTokenStore) Put(ctx context.Context, memberID string, tok Token) error {
	key, val, err := s.sealed(memberID, tok)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key, val); err != nil {
		return fmt.Errorf("bitrix: token store put %s: %w", key, err)
	}
	return nil
}

// Delete forgets a portal's tokens (uninstall). Deleting what is not there
// is not an error.
func (s *KVTokenStore) Delete(ctx context.Context, memberID string) error {
	key, err := tokenKeyOf(memberID)
	if err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("bitrix: token store delete %s: %w", key, err)
	}
	return nil
}

func (s *KVTokenStore) sealed(memberID string, tok Token) (string, []byte, error) {
	key, err := tokenKeyOf(memberID)
	if err != nil {
		return "", nil, err
	}
	plain, err := json.Marshal(tok)
	if err != nil {
		return "", nil, err
	}
	if s.sealer == nil {
		return key, plain, nil
	}
	val, err := s.sealer.Seal(memberID, plain)
	return key, val, err
}

func (s *KVTokenStore) open(memberID string, val []byte) ([]byte, error) {
	if s.sealer == nil {
		return val, nil
	}
	return s.sealer.Open(memberID, val)
}
