package portals

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
)

// File is the YAML portals file:
//
//	portals:
//	  - member_id: a223c6b3710f85df22e9377d6c4f7553
//	    application_token: 51856fefc120afa4b628cc82d3935cce   # or application_token_file
//	    domain: some-domain.bitrix24.com
//	    webhook_url: https://some-domain.bitrix24.com/rest/1/abc123/   # or webhook_url_file
//	    plan: standard        # optional: standard (default) or enterprise
//	    active: true          # optional, default true
//	installations:            # optional: on-premise Bitrix24 (b24hub.forwarder module)
//	  - id: crm-main           # installation id, the tenant key of its events
//	    secret_file: /secrets/crm-main/secret   # or secret: (HMAC-SHA256 key, 32+ bytes)
//	    domain: crm.example.com
//	    webhook_url_file: /secrets/crm-main/webhook   # optional: REST calls back
//	    plan: standard        # optional, as for portals
//	    active: true          # optional, default true
//
// A file without installations is read exactly as before; ids are unique
// across both lists, because both name the same subjects
// (b24.events.<id>.<EVENT>).
type File struct {
	Portals       []FilePortal       `yaml:"portals"`
	Installations []FileInstallation `yaml:"installations"`
}

// FileInstallation is one on-premise installation of the portals file.
// Secrets may be given inline or as paths to files.
type FileInstallation struct {
	ID             string `yaml:"id"`
	Secret         string `yaml:"secret"`
	SecretFile     string `yaml:"secret_file"`
	Domain         string `yaml:"domain"`
	WebhookURL     string `yaml:"webhook_url"`
	WebhookURLFile string `yaml:"webhook_url_file"`
	Plan           string `yaml:"plan"`
	Active         *bool  `yaml:"active"`
}

// FilePortal is one entry of the portals file. Secrets may be given inline
// or, better, as paths to files mounted from a secret store.
type FilePortal struct {
	MemberID             string `yaml:"member_id"`
	ApplicationToken     string `yaml:"application_token"`
	ApplicationTokenFile string `yaml:"application_token_file"`
	Domain               string `yaml:"domain"`
	WebhookURL           string `yaml:"webhook_url"`
	WebhookURLFile       string `yaml:"webhook_url_file"`
	Plan                 string `yaml:"plan"`
	Active               *bool  `yaml:"active"`
}

// ParseFile decodes a portals file strictly (unknown keys are errors) and
// returns its portals.
func ParseFile(data []byte) ([]Portal, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) { // an empty file lists no portals
			return nil, nil
		}
		return nil, fmt.Errorf("portals: parse: %w", err)
	}
	seen := map[string]bool{}
	out := make([]Portal, 0, len(f.Portals))
	for i, fp := range f.Portals {
		token, err := secret(fp.ApplicationToken, fp.ApplicationTokenFile)
		if err != nil {
			return nil, fmt.Errorf("portals: entry %d (%s): application_token: %w", i, fp.MemberID, err)
		}
		if token == "" {
			return nil, fmt.Errorf("portals: entry %d (%s): application_token or application_token_file is required", i, fp.MemberID)
		}
		hook, err := webhook(fp.WebhookURL, fp.WebhookURLFile)
		if err != nil {
			return nil, fmt.Errorf("portals: entry %d (%s): %w", i, fp.MemberID, err)
		}
		if seen[fp.MemberID] {
			return nil, fmt.Errorf("portals: entry %d: member_id %s listed twice", i, fp.MemberID)
		}
		seen[fp.MemberID] = true
		p := Portal{
			MemberID: fp.MemberID, Domain: fp.Domain, TokenSHA256: HashToken(token),
			WebhookURL: hook, Plan: fp.Plan, Active: fp.Active == nil || *fp.Active, Source: SourceFile,
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i, err)
		}
		out = append(out, p)
	}
	for i, fi := range f.Installations {
		key, err := secret(fi.Secret, fi.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("portals: installation %d (%s): secret: %w", i, fi.ID, err)
		}
		if key == "" {
			return nil, fmt.Errorf("portals: installation %d (%s): secret or secret_file is required", i, fi.ID)
		}
		hook, err := webhook(fi.WebhookURL, fi.WebhookURLFile)
		if err != nil {
			return nil, fmt.Errorf("portals: installation %d (%s): %w", i, fi.ID, err)
		}
		if seen[fi.ID] {
			return nil, fmt.Errorf("portals: installation %d: id %s is already listed (ids are unique across portals and installations)", i, fi.ID)
		}
		seen[fi.ID] = true
		p := Portal{
			MemberID: fi.ID, Domain: fi.Domain, WebhookURL: hook, Plan: fi.Plan,
			Active: fi.Active == nil || *fi.Active, Source: SourceFile, OnPremise: true, SigningSecret: []byte(key),
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("installation %d: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

// webhook reads an incoming-webhook URL given inline or as a file and
// checks that it is an http(s) URL.
func webhook(inline, path string) (string, error) {
	hook, err := secret(inline, path)
	if err != nil {
		return "", fmt.Errorf("webhook_url: %w", err)
	}
	if hook != "" {
		if u, err := url.Parse(hook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return "", fmt.Errorf("webhook_url is not an http(s) URL")
		}
	}
	return hook, nil
}

func secret(inline, path string) (string, error) {
	if path == "" {
		return inline, nil
	}
	if inline != "" {
		return "", fmt.Errorf("give the value or the file, not both")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// LoadFile reads the portals file at path into r (source "file").
func (r *Registry) LoadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("portals: %w", err)
	}
	ps, err := ParseFile(data)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return r.Replace(SourceFile, ps)
}

// WatchFile reloads path every interval when its content changed, until ctx
// ends. A broken edit is logged and the last good set is kept, so a typo
// never locks every portal out.
func (r *Registry) WatchFile(ctx context.Context, path string, interval time.Duration, log *slog.Logger) {
	var last [32]byte
	if data, err := os.ReadFile(path); err == nil {
		last = sha256.Sum256(data)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		data, err := os.ReadFile(path)
		if err != nil {
			log.WarnContext(ctx, "portals file unreadable; keeping the last good set", "path", path, "error", err)
			continue
		}
		sum := sha256.Sum256(data)
		if sum == last {
			continue
		}
		ps, err := ParseFile(data)
		if err == nil {
			err = r.Replace(SourceFile, ps)
		}
		if err != nil {
			log.ErrorContext(ctx, "portals file invalid; keeping the last good set", "path", path, "error", err)
			continue
		}
		last = sum
		log.InfoContext(ctx, "portals file reloaded", "path", path, "portals", len(ps))
	}
}
