package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"gopkg.in/yaml.v3"
)

func init() {
	var file, member, domain, token, tokenFile, webhookFile, plan string
	var noKV bool
	fileFlag := func(fs *flag.FlagSet) {
		fs.StringVar(&file, "portals-file", "", "the portals YAML file (env B24HUB_PORTALS_FILE)")
	}
	register(&command{
		path:    "portals list",
		summary: "list portals from the portals file and the installed-apps bucket (no secrets)",
		example: "b24ctl portals list --portals-file deploy/portals.yaml",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fileFlag(fs)
			fs.BoolVar(&noKV, "no-nats", false, "read only the file (do not contact NATS)")
		},
		run: func(ctx context.Context, c *call) error {
			return portalsList(ctx, c, or(file, c.env.Getenv("B24HUB_PORTALS_FILE")), noKV)
		},
	})
	register(&command{
		path:    "portals add",
		summary: "add an outgoing-webhook portal to the portals file",
		example: "b24ctl portals add --portals-file portals.yaml --member-id a223c6b3710f85df22e9377d6c4f7553 --domain acme.bitrix24.com --token-file token.txt",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fileFlag(fs)
			fs.StringVar(&member, "member-id", "", "the portal's member_id (required)")
			fs.StringVar(&domain, "domain", "", "the portal host, e.g. acme.bitrix24.com")
			fs.StringVar(&token, "application-token", "", "the outgoing webhook's application token (prefer --token-file; \"generate\" makes one)")
			fs.StringVar(&tokenFile, "token-file", "", "file holding the application token (referenced, not copied)")
			fs.StringVar(&webhookFile, "webhook-url-file", "", "file holding the incoming-webhook URL used to call the portal back")
			fs.StringVar(&plan, "plan", "", "standard (default) or enterprise: the REST rate limit")
		},
		run: func(ctx context.Context, c *call) error {
			return portalsAdd(c, or(file, c.env.Getenv("B24HUB_PORTALS_FILE")), portals.FilePortal{
				MemberID: member, Domain: domain, ApplicationToken: token, ApplicationTokenFile: tokenFile,
				WebhookURLFile: webhookFile, Plan: plan})
		},
	})
	register(&command{
		path:    "portals rotate-token",
		summary: "replace a file portal's application token (after regenerating it in Bitrix24)",
		example: "b24ctl portals rotate-token --portals-file portals.yaml --member-id a223c6b3710f85df22e9377d6c4f7553 --application-token-stdin < token.txt",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fileFlag(fs)
			fs.StringVar(&member, "member-id", "", "the portal's member_id (required)")
			fs.StringVar(&token, "application-token", "", "the new token (prefer --application-token-stdin)")
			fs.BoolFunc("application-token-stdin", "read the new token from standard input", func(string) error {
				token = "-"
				return nil
			})
		},
		run: func(ctx context.Context, c *call) error {
			return portalsRotate(ctx, c, or(file, c.env.Getenv("B24HUB_PORTALS_FILE")), member, token)
		},
	})
	register(&command{
		path:    "portals health",
		summary: "show each portal's last events, silences and firing alerts (from the monitor)",
		example: "b24ctl portals health --member-id a223c6b3710f85df22e9377d6c4f7553",
		flags: func(fs *flag.FlagSet, _ *opts) {
			fs.StringVar(&member, "member-id", "", "one portal (default: all)")
		},
		run: func(ctx context.Context, c *call) error { return portalsHealth(ctx, c, member) },
	})
}

// portalRow is one portal in `portals list`.
type portalRow struct {
	MemberID       string `json:"member_id"`
	Domain         string `json:"domain"`
	Source         string `json:"source"`
	Active         bool   `json:"active"`
	Plan           string `json:"plan,omitempty"`
	Webhook        bool   `json:"webhook"`
	ClientEndpoint string `json:"client_endpoint,omitempty"`
}

func portalsList(ctx context.Context, c *call, file string, noKV bool) error {
	var rows []portalRow
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return fail(ExitError, "%v — pass --portals-file or set B24HUB_PORTALS_FILE", err)
		}
		ps, err := portals.ParseFile(data)
		if err != nil {
			return fail(ExitError, "%s: %v", file, err)
		}
		for _, p := range ps {
			rows = append(rows, portalRow{MemberID: p.MemberID, Domain: p.Domain, Source: "file", Active: p.Active, Plan: p.Plan, Webhook: p.WebhookURL != ""})
		}
	}
	if !noKV {
		nc, js, err := c.connect(ctx)
		if err != nil {
			return err
		}
		defer nc.Close()
		kv, err := js.KeyValue(ctx, eventbus.BucketPortals)
		if err != nil {
			return fail(ExitUnavailable, "bucket %s: %v — run `b24ctl topology apply`", eventbus.BucketPortals, err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			return fail(ExitError, "%v", err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if err != nil {
				continue
			}
			var rec portals.Installed
			if json.Unmarshal(e.Value(), &rec) != nil {
				continue
			}
			rows = append(rows, portalRow{MemberID: rec.MemberID, Domain: rec.Domain, Source: "install", Active: rec.Active, Plan: rec.Plan, ClientEndpoint: rec.ClientEndpoint})
		}
	}
	slices.SortFunc(rows, func(a, b portalRow) int { return strings.Compare(a.MemberID+a.Source, b.MemberID+b.Source) })
	if rows == nil {
		rows = []portalRow{}
	}
	c.emit(map[string]any{"portals": rows}, func(w io.Writer) {
		var t [][]string
		for _, r := range rows {
			t = append(t, []string{r.MemberID, r.Domain, r.Source, yesNo(r.Active), or(r.Plan, "standard"), yesNo(r.Webhook)})
		}
		table(w, []string{"MEMBER_ID", "DOMAIN", "SOURCE", "ACTIVE", "PLAN", "WEBHOOK"}, t)
	})
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// readFile loads the portals file as a document (missing file: empty).
func readPortalsFile(path string) (portals.File, error) {
	var f portals.File
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return f, nil
	}
	if err != nil {
		return f, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return f, err
	}
	return f, nil
}

// writePortalsFile validates f the way every service will read it, then
// replaces path atomically. Comments in the file are not kept.
func writePortalsFile(path string, f portals.File) error {
	data, err := yaml.Marshal(f)
	if err != nil {
		return err
	}
	if _, err := portals.ParseFile(data); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".portals-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func portalsAdd(c *call, file string, p portals.FilePortal) error {
	if file == "" {
		return usageErr("--portals-file (or B24HUB_PORTALS_FILE) is required")
	}
	if p.MemberID == "" {
		return usageErr("--member-id is required (auth[member_id] of the portal's events)")
	}
	if (p.ApplicationToken == "") == (p.ApplicationTokenFile == "") {
		return usageErr("give exactly one of --application-token and --token-file")
	}
	generated := ""
	if p.ApplicationToken == "generate" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		generated = hex.EncodeToString(b[:])
		p.ApplicationToken = generated
	}
	f, err := readPortalsFile(file)
	if err != nil {
		return fail(ExitError, "%s: %v", file, err)
	}
	for _, x := range f.Portals {
		if x.MemberID == p.MemberID {
			return fail(ExitError, "portal %s is already in %s — use `b24ctl portals rotate-token` to change its token", p.MemberID, file)
		}
	}
	f.Portals = append(f.Portals, p)
	if err := writePortalsFile(file, f); err != nil {
		return fail(ExitError, "%v", err)
	}
	res := map[string]any{"added": p.MemberID, "file": file}
	if generated != "" {
		res["application_token"] = generated
	}
	c.emit(res, func(w io.Writer) {
		fmt.Fprintf(w, "added portal %s to %s; services reload the file within seconds\n", p.MemberID, file)
		if generated != "" {
			fmt.Fprintf(w, "generated application token (shown once): %s\n", generated)
		}
	})
	return nil
}

func portalsRotate(ctx context.Context, c *call, file, member, token string) error {
	if member == "" {
		return usageErr("--member-id is required")
	}
	if token == "-" {
		b, err := io.ReadAll(io.LimitReader(c.env.Stdin, 4096))
		if err != nil {
			return fail(ExitError, "read token: %v", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return usageErr("give the new token with --application-token-stdin (or --application-token)")
	}
	if file == "" {
		return usageErr("--portals-file (or B24HUB_PORTALS_FILE) is required")
	}
	f, err := readPortalsFile(file)
	if err != nil {
		return fail(ExitError, "%s: %v", file, err)
	}
	i := slices.IndexFunc(f.Portals, func(p portals.FilePortal) bool { return p.MemberID == member })
	if i < 0 {
		return fail(ExitError, "portal %s is not in %s; portals installed as apps get their token from ONAPPINSTALL — reinstall the app to rotate it", member, file)
	}
	if f.Portals[i].ApplicationTokenFile != "" {
		path := f.Portals[i].ApplicationTokenFile
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return fail(ExitError, "write %s: %v — update the secret that backs this file", path, err)
		}
	} else {
		f.Portals[i].ApplicationToken = token
		if err := writePortalsFile(file, f); err != nil {
			return fail(ExitError, "%v", err)
		}
	}
	c.emit(map[string]any{"rotated": member, "token_sha256": portals.HashToken(token)}, func(w io.Writer) {
		fmt.Fprintf(w, "rotated the application token of %s (sha256 %s…); the ingress picks it up within seconds\n", member, portals.HashToken(token)[:12])
	})
	return nil
}

func portalsHealth(ctx context.Context, c *call, member string) error {
	var list []map[string]any
	if member != "" {
		var one map[string]any
		if err := c.monitorDo(ctx, http.MethodGet, "/portals/"+url.PathEscape(member), nil, nil, &one); err != nil {
			return err
		}
		list = []map[string]any{one}
	} else {
		var all struct {
			Portals []map[string]any `json:"portals"`
		}
		if err := c.monitorDo(ctx, http.MethodGet, "/portals", nil, nil, &all); err != nil {
			return err
		}
		list = all.Portals
	}
	c.emit(map[string]any{"portals": list}, func(w io.Writer) {
		var rows [][]string
		for _, p := range list {
			alerts, _ := p["alerts"].([]any)
			silent := 0
			if ss, ok := p["silence"].([]any); ok {
				for _, s := range ss {
					if m, ok := s.(map[string]any); ok && m["firing"] == true {
						silent++
					}
				}
			}
			rows = append(rows, []string{str(p, "portal"), str(p, "domain"), str(p, "last_event_at"), fmt.Sprint(silent), fmt.Sprint(len(alerts))})
		}
		table(w, []string{"PORTAL", "DOMAIN", "LAST EVENT", "SILENT RULES", "FIRING ALERTS"}, rows)
	})
	for _, p := range list {
		if a, _ := p["alerts"].([]any); len(a) > 0 {
			return fail(ExitFindings, "alerts firing")
		}
	}
	return nil
}
