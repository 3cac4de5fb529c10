package bitrix

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Token is a portal's OAuth credential set as stored between calls.
type Token struct {
	// AccessToken authenticates REST calls for an hour; RefreshToken (180
	// days, rotated on every refresh) gets the next one (§4.2).
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"` // see AccessToken
	// Expires is informational: the client refreshes only when the portal
	// answers expired_token (§4.2 warns against refreshing on a timer).
	Expires time.Time `json:"expires"`
	// ClientEndpoint is the REST base, https://{portal}/rest/ (§3.2).
	ClientEndpoint string `json:"client_endpoint"`
	// ServerEndpoint is the regional OAuth server's REST base, e.g.
	// https://oauth.bitrix.info/rest/ or https://oauth.bitrix24.tech/rest/
	// (§3.1). Refreshes go to its host; it is never hard-coded.
	ServerEndpoint string `json:"server_endpoint"`
	// Domain is the portal host. A refresh answer's "domain" is the OAuth
	// server's, not the portal's (§4.2), so it is not taken from there.
	Domain string `json:"domain"`
	// MemberID is the portal's stable key (§3.2); Scope and UserID are as
	// granted.
	MemberID string `json:"member_id"`
	Scope    string `json:"scope,omitempty"`   // see MemberID
	UserID   ID     `json:"user_id,omitempty"` // see MemberID

	// LeaseOwner and LeaseUntil coordinate refreshes across replicas: the
	// replica that wins a compare-and-swap setting them is the only one that
	// calls the OAuth server until LeaseUntil. Stores persist them like any
	// other field.
	LeaseOwner string    `json:"lease_owner,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitzero"` // see LeaseOwner
}

// Store errors.
var (
	// ErrTokenNotFound is returned by TokenStore.Load for an unknown portal.
	ErrTokenNotFound = errors.New("bitrix: no token stored for portal")
	// ErrTokenConflict is returned by TokenStore.CompareAndSwap when the
	// stored revision is not the expected one.
	ErrTokenConflict = errors.New("bitrix: token revision conflict")
)

// TokenStore persists each portal's Token with compare-and-swap semantics so
// that a rotated refresh token is never lost when replicas refresh at once
// (§4.2: every refresh returns a new refresh token). Revisions are opaque
// and non-zero for stored tokens.
type TokenStore interface {
	// Load returns the token and its revision, or ErrTokenNotFound.
	Load(ctx context.Context, memberID string) (Token, uint64, error)
	// CompareAndSwap stores tok if the current revision is rev (0: only if
	// nothing is stored) and returns the new revision, or ErrTokenConflict.
	CompareAndSwap(ctx context.Context, memberID string, rev uint64, tok Token) (uint64, error)
}

// MemoryTokenStore is an in-process TokenStore for tests and single-process
// tools. The zero value is ready to use.
type MemoryTokenStore struct {
	mu   sync.Mutex
	rev  uint64
	toks map[string]memToken
}

type memToken struct {
	tok Token
	rev uint64
}

var _ TokenStore = (*MemoryTokenStore)(nil)

// Load implements TokenStore.
func (s *MemoryTokenStore) Load(_ context.Context, memberID string) (Token, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.toks[memberID]
	if !ok {
		return Token{}, 0, ErrTokenNotFound
	}
	return t.tok, t.rev, nil
}

// CompareAndSwap implements TokenStore.
func (s *MemoryTokenStore) CompareAndSwap(_ context.Context, memberID string, rev uint64, tok Token) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.toks == nil {
		s.toks = map[string]memToken{}
	}
	if s.toks[memberID].rev != rev {
		return 0, ErrTokenConflict
	}
	s.rev++
	s.toks[memberID] = memToken{tok: tok, rev: s.rev}
	return s.rev, nil
}

// Put stores tok unconditionally, e.g. from an ONAPPINSTALL event.
func (s *MemoryTokenStore) Put(memberID string, tok Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.toks == nil {
		s.toks = map[string]memToken{}
	}
	s.rev++
	s.toks[memberID] = memToken{tok: tok, rev: s.rev}
}
