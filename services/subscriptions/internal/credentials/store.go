package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/b24hub/b24hub/libs/bitrix"
	"github.com/nats-io/nats.go/jetstream"
)

// Store is a bitrix.TokenStore over an encrypted key-value bucket
// (eventbus.BucketTokens), keyed by member id. Revisions are the bucket's
// revisions, so CompareAndSwap is atomic across every replica.
type Store struct {
	kv     jetstream.KeyValue
	cipher *Cipher
}

var _ bitrix.TokenStore = (*Store)(nil)

// NewStore returns a Store over kv.
func NewStore(kv jetstream.KeyValue, c *Cipher) *Store { return &Store{kv: kv, cipher: c} }

// Load implements bitrix.TokenStore. It returns bitrix.ErrTokenNotFound for
// a portal without credentials and ErrDecrypt for a value the key cannot
// open.
func (s *Store) Load(ctx context.Context, memberID string) (bitrix.Token, uint64, error) {
	e, err := s.kv.Get(ctx, memberID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bitrix.Token{}, 0, bitrix.ErrTokenNotFound
	}
	if err != nil {
		return bitrix.Token{}, 0, fmt.Errorf("credentials: load %s: %w", memberID, err)
	}
	pt, err := s.cipher.Open(memberID, e.Value())
	if err != nil {
		return bitrix.Token{}, 0, fmt.Errorf("credentials: load %s: %w", memberID, err)
	}
	var tok bitrix.Token
	if err := json.Unmarshal(pt, &tok); err != nil {
		return bitrix.Token{}, 0, fmt.Errorf("credentials: load %s: %w", memberID, err)
	}
	return tok, e.Revision(), nil
}

// CompareAndSwap implements bitrix.TokenStore: rev 0 creates, any other
// revision updates only if it is still the current one.
func (s *Store) CompareAndSwap(ctx context.Context, memberID string, rev uint64, tok bitrix.Token) (uint64, error) {
	val, err := s.seal(memberID, tok)
	if err != nil {
		return 0, err
	}
	var n uint64
	if rev == 0 {
		n, err = s.kv.Create(ctx, memberID, val)
	} else {
		n, err = s.kv.Update(ctx, memberID, val, rev)
	}
	if isConflict(err) {
		return 0, bitrix.ErrTokenConflict
	}
	if err != nil {
		return 0, fmt.Errorf("credentials: store %s: %w", memberID, err)
	}
	return n, nil
}

// Put stores tok unconditionally: an install replaces whatever was there,
// since Bitrix24 just issued a fresh token pair.
func (s *Store) Put(ctx context.Context, memberID string, tok bitrix.Token) error {
	val, err := s.seal(memberID, tok)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, memberID, val); err != nil {
		return fmt.Errorf("credentials: store %s: %w", memberID, err)
	}
	return nil
}

// Delete forgets a portal's credentials (uninstall). Deleting what is not
// there is not an error.
func (s *Store) Delete(ctx context.Context, memberID string) error {
	if err := s.kv.Delete(ctx, memberID); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("credentials: delete %s: %w", memberID, err)
	}
	return nil
}

// Has reports whether credentials are stored for memberID.
func (s *Store) Has(ctx context.Context, memberID string) (bool, error) {
	_, err := s.kv.Get(ctx, memberID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (s *Store) seal(memberID string, tok bitrix.Token) ([]byte, error) {
	pt, err := json.Marshal(tok)
	if err != nil {
		return nil, fmt.Errorf("credentials: encode %s: %w", memberID, err)
	}
	return s.cipher.Seal(memberID, pt)
}

func isConflict(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
