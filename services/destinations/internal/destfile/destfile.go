// Package destfile reads the operator-owned destinations file: the HTTP
// endpoints outside teams subscribe, what each receives, its signing
// secrets and its limits. A file is validated whole; a broken edit never
// replaces the last good set (see Watch).
package destfile

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"go.yaml.in/yaml/v3"
)

// Defaults of the optional fields of a destination.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultRate        = 10.0
	DefaultConcurrency = 4
	DefaultRetryFor    = time.Hour
	// MaxSecrets is how many secrets sign at once: the current one and, during
	// a rotation, the next (Standard Webhooks sends one signature per secret).
	MaxSecrets = 2
)

// Destination is one validated destination.
type Destination struct {
	// Name is a DNS label; the durable consumer is "dest-<name>".
	Name string
	// URL is the endpoint requests are POSTed to.
	URL *url.URL
	// Subjects are the JetStream filter subjects it receives, in the
	// B24_EVENTS stream (raw events) or B24_CHANGES (domain changes).
	Subjects []string
	// Stream is the stream Subjects belong to.
	Stream string
	// Secrets are the decoded signing keys, from the secret files, current first.
	Secrets [][]byte
	// Timeout bounds one request, connection to last byte read.
	Timeout time.Duration
	// Rate is the request rate ceiling per second; Concurrency the requests
	// in flight at most.
	Rate        float64
	Concurrency int
	// RetryFor is how long a delivery is retried before it is dead-lettered.
	RetryFor time.Duration
	// fingerprint identifies the configuration, secrets included, so a
	// reload restarts exactly the destinations that changed.
	fingerprint [32]byte
}

// Durable is the destination's durable consumer name: public API, like the
// internal consumers' names (renaming a destination re-creates it).
func (d Destination) Durable() string { return "dest-" + d.Name }

// Same reports whether d and o are configured identically, secrets
// included.
func (d Destination) Same(o Destination) bool { return d.fingerprint == o.fingerprint }

// file is the YAML shape; unknown keys are errors.
type file struct {
	Destinations []fileDestination `yaml:"destinations"`
}

type fileDestination struct {
	Name        string   `yaml:"name"`
	URL         string   `yaml:"url"`
	Receives    receives `yaml:"receives"`
	SecretFiles []string `yaml:"secret_files"`
	Timeout     string   `yaml:"timeout"`
	Rate        float64  `yaml:"rate"`
	Concurrency int      `yaml:"concurrency"`
	RetryFor    string   `yaml:"retry_for"`
}

// receives selects the messages: raw events (events, optionally limited to
// portals) or domain changes (changes: entity types, "*" for all). Exactly
// one of events and changes.
type receives struct {
	Events  []string `yaml:"events"`
	Changes []string `yaml:"changes"`
	Portals []string `yaml:"portals"`
}

// Policy is what the deployment allows destinations to be.
type Policy struct {
	// AllowHTTP accepts http:// URLs (local development only).
	AllowHTTP bool
	// AllowedHosts, when not empty, are the only hosts a URL may name: exact
	// names or "*.example.com" for subdomains.
	AllowedHosts []string
}

var (
	name        = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	entityToken = regexp.MustCompile(`^([a-z][a-z0-9_]*|\*)$`)
)

// Parse reads a destinations file. Every problem is reported, each naming
// the destination and field; unknown keys are errors so a misspelt
// setting never silently takes its default.
func Parse(data []byte, p Policy) ([]Destination, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("destinations file: %w", err)
	}
	var errs []error
	seen := map[string]bool{}
	out := make([]Destination, 0, len(f.Destinations))
	for i, fd := range f.Destinations {
		d, err := fd.validate(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("destinations[%d] (%s): %w", i, fd.Name, err))
			continue
		}
		if seen[d.Name] {
			errs = append(errs, fmt.Errorf("destinations[%d]: name %q declared twice", i, d.Name))
		}
		seen[d.Name] = true
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

func (fd fileDestination) validate(p Policy) (Destination, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	d := Destination{Name: fd.Name, Timeout: DefaultTimeout, Rate: DefaultRate, Concurrency: DefaultConcurrency, RetryFor: DefaultRetryFor}
	if !name.MatchString(fd.Name) || len(fd.Name) > 40 {
		bad("name must be a DNS label of at most 40 characters")
	}
	u, err := url.Parse(fd.URL)
	switch {
	case fd.URL == "":
		bad("url is required")
	case err != nil:
		bad("url: %v", err)
	case u.Scheme != "https" && !(p.AllowHTTP && u.Scheme == "http"):
		bad("url %q must be https", fd.URL)
	case u.Hostname() == "":
		bad("url %q has no host", fd.URL)
	case u.User != nil:
		bad("url must not carry credentials; sign with secret_files instead")
	case len(p.AllowedHosts) > 0 && !hostAllowed(u.Hostname(), p.AllowedHosts):
		bad("host %q is not in B24HUB_DESTINATIONS_ALLOWED_HOSTS", u.Hostname())
	default:
		d.URL = u
	}
	r := fd.Receives
	switch {
	case len(r.Events) > 0 && len(r.Changes) > 0:
		bad("receives: set events or changes, not both (one destination reads one stream)")
	case len(r.Events) > 0:
		d.Stream = eventbus.StreamEvents
		portals := r.Portals
		if len(portals) == 0 {
			portals = []string{"*"}
		}
		for _, pt := range portals {
			for _, ev := range r.Events {
				if pt != "*" && !eventbus.ValidToken(pt) || ev != "*" && !eventbus.ValidToken(ev) {
					bad("receives: portal %q or event %q is not a subject token", pt, ev)
					continue
				}
				d.Subjects = append(d.Subjects, eventbus.RawEvent(pt, strings.ToUpper(ev)))
			}
		}
	case len(r.Changes) > 0:
		d.Stream = eventbus.StreamChanges
		portals := r.Portals
		if len(portals) == 0 {
			portals = []string{"*"}
		}
		for _, pt := range portals {
			for _, et := range r.Changes {
				if pt != "*" && !eventbus.ValidToken(pt) || !entityToken.MatchString(et) {
					bad("receives: portal %q or entity type %q is not valid", pt, et)
					continue
				}
				d.Subjects = append(d.Subjects, eventbus.Change(et, pt, "*"))
			}
		}
	default:
		bad("receives: events or changes is required")
	}
	slices.Sort(d.Subjects)
	d.Subjects = slices.Compact(d.Subjects)
	if n := len(fd.SecretFiles); n == 0 || n > MaxSecrets {
		bad("secret_files: want 1 or %d files (two during a rotation), got %d", MaxSecrets, n)
	}
	for _, path := range fd.SecretFiles {
		key, err := ReadSecret(path)
		if err != nil {
			bad("secret_files: %v", err)
			continue
		}
		d.Secrets = append(d.Secrets, key)
	}
	for _, dur := range []struct {
		field, v string
		dst      *time.Duration
	}{{"timeout", fd.Timeout, &d.Timeout}, {"retry_for", fd.RetryFor, &d.RetryFor}} {
		if dur.v == "" {
			continue
		}
		v, err := time.ParseDuration(dur.v)
		if err != nil || v <= 0 {
			bad("%s %q: want a positive duration like 10s", dur.field, dur.v)
			continue
		}
		*dur.dst = v
	}
	if d.Timeout > 5*time.Minute {
		bad("timeout %s: at most 5m", d.Timeout)
	}
	if fd.Rate < 0 {
		bad("rate %v: want requests per second > 0", fd.Rate)
	} else if fd.Rate > 0 {
		d.Rate = fd.Rate
	}
	if fd.Concurrency < 0 || fd.Concurrency > 256 {
		bad("concurrency %d: want 1..256", fd.Concurrency)
	} else if fd.Concurrency > 0 {
		d.Concurrency = fd.Concurrency
	}
	if len(errs) > 0 {
		return Destination{}, errors.Join(errs...)
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%q\x00%s\x00%v\x00%v\x00%d\x00%v", d.Name, d.URL, d.Subjects, d.Stream, d.Timeout, d.Rate, d.Concurrency, d.RetryFor)
	for _, s := range d.Secrets {
		h.Write([]byte{0})
		h.Write(s)
	}
	copy(d.fingerprint[:], h.Sum(nil))
	return d, nil
}

func hostAllowed(host string, allowed []string) bool {
	host = strings.ToLower(host)
	for _, a := range allowed {
		a = strings.ToLower(strings.TrimSpace(a))
		if suffix, ok := strings.CutPrefix(a, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == a {
			return true
		}
	}
	return false
}

// ReadSecret reads a signing secret file: "whsec_" followed by the base64
// key, as Standard Webhooks specifies (surrounding whitespace ignored). The
// key must be 24 to 64 bytes.
func ReadSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseSecret(strings.TrimSpace(string(data)))
}

// ParseSecret decodes "whsec_<base64>".
func ParseSecret(s string) ([]byte, error) {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return nil, errors.New(`secret must be "whsec_" followed by base64`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("secret: base64: %w", err)
	}
	if len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("secret: key is %d bytes, want 24..64", len(key))
	}
	return key, nil
}

// Load reads and parses path.
func Load(path string, p Policy) ([]Destination, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, p)
}

// Watch calls apply with the file's destinations whenever its content (or
// a secret file it names) changes, checking every interval until ctx ends.
// A file that does not read or parse is logged and the last good set stays
// in force, so a typo never stops deliveries.
func Watch(ctx context.Context, path string, p Policy, interval time.Duration, log *slog.Logger, apply func([]Destination)) {
	var last [32]byte
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ds, err := Load(path, p)
		if err != nil {
			log.ErrorContext(ctx, "destinations file invalid; keeping the last good set", "path", path, "error", err)
		} else if sum := setSum(ds); sum != last {
			last = sum
			apply(ds)
			log.InfoContext(ctx, "destinations loaded", "path", path, "destinations", len(ds))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func setSum(ds []Destination) [32]byte {
	h := sha256.New()
	for _, d := range ds {
		h.Write(d.fingerprint[:])
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s
}
