package bitrix

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// TokenKeySize is the size in bytes of a key for [NewTokenCipher]: AES-256.
const TokenKeySize = 32

// ErrTokenDecrypt is returned when a stored token cannot be opened: a wrong
// key, a value moved to another member_id's key, or tampering.
var ErrTokenDecrypt = errors.New("bitrix: cannot decrypt stored token (wrong key or tampered value)")

// TokenSealer encrypts token records at rest, bound to the member_id they
// belong to. [*TokenCipher] is the implementation every b24hub service uses,
// so that what one service writes another can read.
type TokenSealer interface {
	// Seal encrypts plaintext for memberID.
	Seal(memberID string, plaintext []byte) ([]byte, error)
	// Open decrypts a value sealed for memberID, or fails with an error
	// wrapping ErrTokenDecrypt.
	Open(memberID string, sealed []byte) ([]byte, error)
}

// tokenFormat is the first byte of every sealed value; tokenAAD namespaces
// the additional authenticated data. Both are the layout the subscriptions
// service has written to B24_TOKENS since its first release, kept so that
// stored installs stay readable.
const (
	tokenFormat = 1
	tokenAAD    = "b24hub/credentials/v1\x00"
)

// TokenCipher seals token records with AES-256-GCM. A sealed value is
// version (1) || key id (4) || nonce (12) || ciphertext+tag; the member_id is
// the additional authenticated data, so a value copied to another portal's
// key does not open. The key id lets a rotated key keep reading values
// sealed with a previous one.
type TokenCipher struct {
	primary tokenKey
	byID    map[[4]byte]tokenKey
}

type tokenKey struct {
	id   [4]byte
	aead cipher.AEAD
}

var _ TokenSealer = (*TokenCipher)(nil)

// ParseTokenKey decodes a base64 (standard or URL alphabet, padded or not)
// TokenKeySize-byte key, the form B24HUB_CREDENTIALS_KEY takes. The error
// says how to generate one and never contains the input.
func ParseTokenKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != TokenKeySize {
				return nil, fmt.Errorf("bitrix: token key is %d bytes, want %d (generate one with: openssl rand -base64 32)", len(b), TokenKeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("bitrix: token key is not base64 (generate one with: openssl rand -base64 32)")
}

// NewTokenCipher returns a cipher that seals with key and opens values
// sealed with key or any of previous (a key rotation: deploy the new key
// with the old ones in previous, and drop them once every value has been
// rewritten, which every token refresh does). Keys are TokenKeySize bytes.
func NewTokenCipher(key []byte, previous ...[]byte) (*TokenCipher, error) {
	c := &TokenCipher{byID: map[[4]byte]tokenKey{}}
	for i, k := range append([][]byte{key}, previous...) {
		tk, err := newTokenKey(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			c.primary = tk
		}
		if _, dup := c.byID[tk.id]; !dup {
			c.byID[tk.id] = tk
		}
	}
	return c, nil
}

func newTokenKey(key []byte) (tokenKey, error) {
	if len(key) != TokenKeySize {
		return tokenKey{}, fmt.Errorf("bitrix: token key is %d bytes, want %d", len(key), TokenKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return tokenKey{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return tokenKey{}, err
	}
	sum := sha256.Sum256(append([]byte("b24hub key id\x00"), key...))
	var id [4]byte
	copy(id[:], sum[:4])
	return tokenKey{id: id, aead: aead}, nil
}

// Seal implements TokenSealer with the primary key.
func (c *TokenCipher) Seal(memberID string, plaintext []byte) ([]byte, error) {
	k := c.primary
	out := make([]byte, 0, 1+4+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out = append(out, tokenFormat)
	out = append(out, k.id[:]...)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("bitrix: token nonce: %w", err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(tokenAAD+memberID)), nil
}

// Open implements TokenSealer. Anything that does not authenticate fails
// with ErrTokenDecrypt; a value sealed with a key the cipher does not have
// says so, since that is the usual mistake during a key rotation.
func (c *TokenCipher) Open(memberID string, sealed []byte) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != tokenFormat {
		return nil, ErrTokenDecrypt
	}
	var id [4]byte
	copy(id[:], sealed[1:5])
	k, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with a key this service does not have (add the old key to B24HUB_CREDENTIALS_OLD_KEYS)", ErrTokenDecrypt)
	}
	rest := sealed[5:]
	if len(rest) < k.aead.NonceSize() {
		return nil, ErrTokenDecrypt
	}
	pt, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], []byte(tokenAAD+memberID))
	if err != nil {
		return nil, ErrTokenDecrypt
	}
	return pt, nil
}
