// Package credentials keeps each installed portal's OAuth credentials
// (access and refresh token) encrypted at rest in the B24_TOKENS key-value
// bucket, and implements bitrix.TokenStore on top of it so the REST client
// refreshes tokens with compare-and-swap across replicas.
//
// Values are sealed with AES-256-GCM. The member id is the additional
// authenticated data, so a ciphertext copied to another portal's key does
// not decrypt. The sealed form carries a key id, so a key rotation can keep
// reading values sealed with the previous key (see NewCipher).
package credentials

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

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// version is the first byte of every sealed value.
const version = 1

// aadPrefix namespaces the additional authenticated data.
const aadPrefix = "b24hub/credentials/v1\x00"

// ErrDecrypt is returned when a value cannot be opened: wrong key, a value
// moved to another member id, or tampering.
var ErrDecrypt = errors.New("credentials: cannot decrypt (wrong key or tampered value)")

// Cipher seals and opens credential values.
type Cipher struct {
	primary keyed
	byID    map[[4]byte]keyed
}

type keyed struct {
	id   [4]byte
	aead cipher.AEAD
}

// ParseKey decodes a base64 (standard or URL alphabet, padded or not)
// 32-byte key, as given in B24HUB_CREDENTIALS_KEY.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("credentials: key is %d bytes, want %d (generate one with: openssl rand -base64 32)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, errors.New("credentials: key is not base64 (generate one with: openssl rand -base64 32)")
}

// NewCipher returns a Cipher that seals with key and opens values sealed
// with key or any of previous (for key rotation).
func NewCipher(key []byte, previous ...[]byte) (*Cipher, error) {
	c := &Cipher{byID: map[[4]byte]keyed{}}
	for i, k := range append([][]byte{key}, previous...) {
		kd, err := newKeyed(k)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			c.primary = kd
		}
		if _, dup := c.byID[kd.id]; !dup {
			c.byID[kd.id] = kd
		}
	}
	return c, nil
}

func newKeyed(key []byte) (keyed, error) {
	if len(key) != KeySize {
		return keyed{}, fmt.Errorf("credentials: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return keyed{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return keyed{}, err
	}
	sum := sha256.Sum256(append([]byte("b24hub key id\x00"), key...))
	var id [4]byte
	copy(id[:], sum[:4])
	return keyed{id: id, aead: aead}, nil
}

// Seal encrypts plaintext for memberID: version || key id || nonce || sealed.
func (c *Cipher) Seal(memberID string, plaintext []byte) ([]byte, error) {
	k := c.primary
	out := make([]byte, 0, 1+4+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out = append(out, version)
	out = append(out, k.id[:]...)
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("credentials: nonce: %w", err)
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, aad(memberID)), nil
}

// Open decrypts a value sealed for memberID. It returns ErrDecrypt for
// anything that does not authenticate.
func (c *Cipher) Open(memberID string, sealed []byte) ([]byte, error) {
	if len(sealed) < 5 || sealed[0] != version {
		return nil, ErrDecrypt
	}
	var id [4]byte
	copy(id[:], sealed[1:5])
	k, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("%w: sealed with an unknown key; add the old key to B24HUB_CREDENTIALS_OLD_KEYS", ErrDecrypt)
	}
	rest := sealed[5:]
	if len(rest) < k.aead.NonceSize() {
		return nil, ErrDecrypt
	}
	pt, err := k.aead.Open(nil, rest[:k.aead.NonceSize()], rest[k.aead.NonceSize():], aad(memberID))
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

func aad(memberID string) []byte { return []byte(aadPrefix + memberID) }
