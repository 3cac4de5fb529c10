// Package portals is the registry of Bitrix24 portals b24hub accepts events
// from. Portals come from two sources: a YAML file maintained by operators
// (outgoing-webhook portals, reloaded without restart) and records added at
// run time by the app-install flow through a NATS key-value bucket. The
// ingress looks portals up on every request, so lookups are lock-free reads
// of an immutable snapshot.
//
// Application tokens are kept only as SHA-256 digests in memory and in the
// bucket, and compared in constant time.
package portals

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
)

// Source says where a portal record came from.
type Source string

// Sources of portal records.
const (
	SourceFile    Source = "file"
	SourceInstall Source = "install"
)

// Portal is one registered portal.
type Portal struct {
	// MemberID is the stable tenant key (auth[member_id]).
	MemberID string `json:"member_id"`
	// Domain is the portal host; informational (it changes on rename).
	Domain string `json:"domain"`
	// TokenSHA256 is the hex SHA-256 of the application token.
	TokenSHA256 string `json:"application_token_sha256"`
	// WebhookURL is the incoming-webhook URL used to call the portal back
	// (outgoing-webhook portals); empty for OAuth apps. It embeds a secret
	// code: never log it.
	WebhookURL string `json:"-"`
	// ClientEndpoint is the portal's REST base for OAuth apps.
	ClientEndpoint string `json:"client_endpoint,omitempty"`
	// Plan selects the REST rate limit: "" or "standard" (2 req/s, burst 50)
	// or "enterprise" (5 req/s, burst 250).
	Plan string `json:"plan,omitempty"`
	// Active is false for uninstalled portals: their events are refused.
	Active bool `json:"active"`
	// Source is where the record came from.
	Source Source `json:"source"`
	// OnPremise marks a self-hosted Bitrix24 installation that delivers
	// PHP-level events through the b24hub.forwarder module. Its MemberID is
	// the installation id; it has no application token and is authenticated
	// by SigningSecret instead (see Installation).
	OnPremise bool `json:"on_premise,omitempty"`
	// SigningSecret is the HMAC-SHA256 key an on-premise installation signs
	// its deliveries with. Unlike an application token it cannot be kept as
	// a digest (the ingress needs the key to recompute the signature), so it
	// never leaves memory: it is not serialised and only comes from the file.
	SigningSecret []byte `json:"-"`
}

// MinSigningSecret is the shortest accepted on-premise signing secret, in
// bytes: 32 bytes, the size of an HMAC-SHA256 key that is as strong as the
// hash itself.
const MinSigningSecret = 32

// HashToken returns the hex SHA-256 of an application token.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Registry is a concurrent-safe set of portals from several sources. A
// portal in the file wins over an installed record with the same member id,
// so an operator can always override.
type Registry struct {
	mu      sync.Mutex // serialises writers
	sources map[Source]map[string]Portal
	merged  atomic.Pointer[map[string]Portal]
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{sources: map[Source]map[string]Portal{}}
	empty := map[string]Portal{}
	r.merged.Store(&empty)
	return r
}

// Lookup returns the portal with memberID.
func (r *Registry) Lookup(memberID string) (Portal, bool) {
	p, ok := (*r.merged.Load())[memberID]
	return p, ok
}

// Authenticate returns the portal when memberID is known, active, and token
// is its application token. The comparison is constant-time and the reason
// for a refusal is not returned, so callers cannot leak it.
func (r *Registry) Authenticate(memberID, token string) (Portal, bool) {
	p, ok := r.Lookup(memberID)
	given := HashToken(token)
	want := p.TokenSHA256
	if !ok {
		want = given // compare anyway: the same work whether known or not
	}
	match := subtle.ConstantTimeCompare([]byte(given), []byte(want)) == 1
	// An on-premise installation has no application token: it must never
	// be reachable through the REST event route, whatever is posted there.
	if !ok || !p.Active || p.OnPremise || token == "" || !match {
		return Portal{}, false
	}
	return p, true
}

// Installation returns the active on-premise installation with id (its
// MemberID). It reports false for an unknown id, an inactive installation
// and a REST portal, so a portal's member id cannot be used to sign
// on-premise deliveries.
func (r *Registry) Installation(id string) (Portal, bool) {
	p, ok := r.Lookup(id)
	if !ok || !p.Active || !p.OnPremise || len(p.SigningSecret) == 0 {
		return Portal{}, false
	}
	return p, true
}

// All returns every portal, in no particular order.
func (r *Registry) All() []Portal {
	m := *r.merged.Load()
	out := make([]Portal, 0, len(m))
	for _, p := range m {
		out = append(out, p)
	}
	return out
}

// Len reports how many portals are registered.
func (r *Registry) Len() int { return len(*r.merged.Load()) }

// Replace sets the complete portal set of one source.
func (r *Registry) Replace(src Source, ps []Portal) error {
	m := make(map[string]Portal, len(ps))
	for _, p := range ps {
		if err := p.validate(); err != nil {
			return err
		}
		p.Source = src
		m[p.MemberID] = p
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sources[src] = m
	r.rebuild()
	return nil
}

// Put adds or replaces one portal of a source.
func (r *Registry) Put(src Source, p Portal) error {
	if err := p.validate(); err != nil {
		return err
	}
	p.Source = src
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(r.sources[src])
	if m == nil {
		m = map[string]Portal{}
	}
	m[p.MemberID] = p
	r.sources[src] = m
	r.rebuild()
	return nil
}

// Delete removes one portal of a source.
func (r *Registry) Delete(src Source, memberID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := maps.Clone(r.sources[src])
	delete(m, memberID)
	r.sources[src] = m
	r.rebuild()
}

func (r *Registry) rebuild() {
	merged := map[string]Portal{}
	for _, p := range r.sources[SourceInstall] {
		merged[p.MemberID] = p
	}
	for _, p := range r.sources[SourceFile] {
		merged[p.MemberID] = p
	}
	r.merged.Store(&merged)
}

func (p Portal) validate() error {
	switch {
	case !validMemberID(p.MemberID):
		return fmt.Errorf("portals: member_id %q: want 1-64 letters, digits, '_' or '-'", p.MemberID)
	case p.OnPremise && len(p.SigningSecret) < MinSigningSecret:
		return fmt.Errorf("portals: installation %s: secret must be at least %d bytes", p.MemberID, MinSigningSecret)
	case p.OnPremise && p.TokenSHA256 != "":
		return fmt.Errorf("portals: installation %s: an on-premise installation has no application token", p.MemberID)
	case !p.OnPremise && len(p.TokenSHA256) != 64:
		return fmt.Errorf("portals: portal %s: application token missing", p.MemberID)
	case p.Plan != "" && p.Plan != "standard" && p.Plan != "enterprise":
		return fmt.Errorf("portals: portal %s: plan %q: want standard or enterprise", p.MemberID, p.Plan)
	}
	return nil
}

func validMemberID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
