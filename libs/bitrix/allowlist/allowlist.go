// Package allowlist decides which hosts b24hub may send a portal's
// credentials to: the subscriptions service before it calls the endpoints
// of an unverified ONAPPINSTALL body, and every bitrix.Client before it
// follows a portal's redirect (and saves the new endpoint). Bitrix24 cloud
// portals live under a fixed set of registrable domains and are reached over
// https only; on-premise portals (and the fake portal in tests) must be
// configured explicitly (B24HUB_INSTALL_ALLOWED_HOSTS). A request to any
// other host is refused before a socket is opened, so neither a forged
// install nor a hostile portal can make a service send tokens to, or probe,
// arbitrary hosts (SSRF).
package allowlist

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CloudSuffixes are the registrable domains of Bitrix24 cloud portals
// (portal.bitrix24.<tld>). A portal host must be exactly one label below one
// of them.
var CloudSuffixes = []string{
	"bitrix24.com", "bitrix24.ru", "bitrix24.de", "bitrix24.eu", "bitrix24.es",
	"bitrix24.fr", "bitrix24.it", "bitrix24.pl", "bitrix24.uk", "bitrix24.ua",
	"bitrix24.by", "bitrix24.kz", "bitrix24.com.br", "bitrix24.in", "bitrix24.jp",
	"bitrix24.cn", "bitrix24.com.tr", "bitrix24.tr", "bitrix24.id", "bitrix24.vn",
	"bitrix24.site", "bitrix24.shop",
}

// OAuthServers are the regional OAuth servers refresh requests may go to
// (§3.1 of the Bitrix24 reference). The client secret is sent there, so the
// server_endpoint of an install is checked against this list too.
var OAuthServers = []string{"oauth.bitrix.info", "oauth.bitrix24.tech"}

// ErrNotAllowed is returned for a URL whose host is not on the list.
var ErrNotAllowed = errors.New("allowlist: host not allowed")

// List is an immutable allow-list. The zero value allows the cloud domains
// only.
type List struct {
	extra map[string]bool // configured host or host:port, lower case
}

// New returns a List that allows the cloud domains plus extra, a list of
// on-premise hosts ("crm.example.com" or "127.0.0.1:8443"). A configured host
// may be reached over plain http; cloud hosts only over https.
func New(extra []string) (*List, error) {
	l := &List{extra: map[string]bool{}}
	for _, h := range extra {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" {
			continue
		}
		if strings.ContainsAny(h, "/@?# ") {
			return nil, fmt.Errorf("allowlist: %q: want a host or host:port, not a URL", h)
		}
		l.extra[h] = true
	}
	return l, nil
}

// Hosts returns the configured extra hosts (for logging).
func (l *List) Hosts() []string {
	out := make([]string, 0, len(l.extra))
	for h := range l.extra {
		out = append(out, h)
	}
	return out
}

// Portal parses raw as a portal REST base (client_endpoint, e.g.
// https://acme.bitrix24.com/rest/) and returns it when the host is allowed.
// The URL must have no user info, query or fragment, and its path must start
// with /rest/.
func (l *List) Portal(raw string) (*url.URL, error) {
	u, err := l.parse(raw)
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(u.Path, "/rest/") && u.Path != "/rest" {
		return nil, fmt.Errorf("%w: path %q is not /rest/", ErrNotAllowed, u.Path)
	}
	if l.configured(u) {
		return u, nil
	}
	if u.Scheme != "https" || u.Port() != "" && u.Port() != "443" {
		return nil, fmt.Errorf("%w: %s: cloud portals are reached over https on port 443 only", ErrNotAllowed, u.Host)
	}
	if !cloudHost(u.Hostname()) {
		return nil, fmt.Errorf("%w: %s is not a Bitrix24 cloud domain; add it to B24HUB_INSTALL_ALLOWED_HOSTS if it is an on-premise portal", ErrNotAllowed, u.Hostname())
	}
	return u, nil
}

// OAuthServer parses raw as a server_endpoint and returns it when its host
// is a known Bitrix24 OAuth server or a configured host.
func (l *List) OAuthServer(raw string) (*url.URL, error) {
	u, err := l.parse(raw)
	if err != nil {
		return nil, err
	}
	if l.configured(u) {
		return u, nil
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%w: %s: OAuth servers are reached over https only", ErrNotAllowed, u.Host)
	}
	for _, s := range OAuthServers {
		if u.Host == s {
			return u, nil
		}
	}
	return nil, fmt.Errorf("%w: %s is not a Bitrix24 OAuth server", ErrNotAllowed, u.Host)
}

func (l *List) parse(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: unparsable URL", ErrNotAllowed)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return nil, fmt.Errorf("%w: scheme %q", ErrNotAllowed, u.Scheme)
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return nil, fmt.Errorf("%w: %q must be a plain http(s) URL", ErrNotAllowed, raw)
	}
	u.Host = strings.ToLower(u.Host)
	return u, nil
}

func (l *List) configured(u *url.URL) bool {
	if l == nil {
		return false
	}
	return l.extra[u.Host] || (u.Port() == "" && l.extra[u.Hostname()]) ||
		(u.Scheme == "https" && u.Port() == "443" && l.extra[u.Hostname()])
}

// cloudHost reports whether host is <label>.<cloud suffix>, with exactly one
// DNS label in front and no IP literal.
func cloudHost(host string) bool {
	if net.ParseIP(host) != nil {
		return false
	}
	for _, s := range CloudSuffixes {
		label, ok := strings.CutSuffix(host, "."+s)
		if ok && validLabel(label) {
			return true
		}
	}
	return false
}

func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
