package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/portals"
	"github.com/spf13/cobra"
)

func (a *app) portalsCmd() *cobra.Command {
	return group("portals", "portals: list, add, rotate a token, health",
		a.portalsListCmd(), a.portalsAddCmd(), a.portalsRotateCmd(), a.portalsHealthCmd())
}

// portalsFileFlag adds --portals-file (default B24HUB_PORTALS_FILE).
func (a *app) portalsFileFlag(cmd *cobra.Command) *string {
	var f string
	cmd.Flags().StringVar(&f, "portals-file", a.env.Getenv("B24HUB_PORTALS_FILE"), "the portals YAML file (env B24HUB_PORTALS_FILE)")
	_ = cmd.MarkFlagFilename("portals-file", "yaml", "yml")
	return &f
}

func (a *app) portalsListCmd() *cobra.Command {
	var noNATS bool
	cmd := &cobra.Command{
		Use:     "list",
		Short:   "list portals from the portals file and the installed-apps bucket (no secrets)",
		Example: "  b24ctl portals list --portals-file deploy/portals.yaml\n  b24ctl portals list -o yaml",
		Args:    noArgs,
	}
	file := a.portalsFileFlag(cmd)
	cmd.Flags().BoolVar(&noNATS, "no-nats", false, "read only the file (do not contact NATS)")
	nats := a.natsFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ctx, cancel := bounded(ctx, cmd)
		defer cancel()
		return portalsList(ctx, cmd, *file, noNATS, nats, printerFor(*out, a.env.Stdout))
	})
	return cmd
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

func portalsList(ctx context.Context, cmd *cobra.Command, file string, noNATS bool, o *natsOptions, p printer) error {
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
	if !noNATS {
		nc, js, err := o.connect(cmd)
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
	return p.print(map[string]any{"portals": rows}, func(w io.Writer) {
		var t [][]string
		for _, r := range rows {
			t = append(t, []string{r.MemberID, r.Domain, r.Source, yesNo(r.Active), or(r.Plan, "standard"), yesNo(r.Webhook)})
		}
		table(w, []string{"MEMBER_ID", "DOMAIN", "SOURCE", "ACTIVE", "PLAN", "WEBHOOK"}, t)
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (a *app) portalsAddCmd() *cobra.Command {
	var p portals.FilePortal
	cmd := &cobra.Command{
		Use:   "add",
		Short: "add an outgoing-webhook portal to the portals file",
		Long: `add appends an outgoing-webhook portal to the portals file. The entry carries
only the keys given; comments and the other entries of the file are kept. The
result is validated the way every service reads the file, then replaces the
file atomically.`,
		Example: "  b24ctl portals add --portals-file portals.yaml --member-id a223c6b3710f85df22e9377d6c4f7553 --domain acme.bitrix24.com --application-token-file token.txt",
		Args:    noArgs,
	}
	file := a.portalsFileFlag(cmd)
	fs := cmd.Flags()
	fs.StringVar(&p.MemberID, "member-id", "", "the portal's member_id (required)")
	fs.StringVar(&p.Domain, "domain", "", "the portal host, e.g. acme.bitrix24.com")
	fs.StringVar(&p.ApplicationToken, "application-token", "", "the outgoing webhook's application token (prefer --application-token-file; \"generate\" makes one)")
	fs.StringVar(&p.ApplicationTokenFile, "application-token-file", "", "file holding the application token (referenced, not copied)")
	fs.StringVar(&p.WebhookURLFile, "webhook-url-file", "", "file holding the incoming-webhook URL used to call the portal back")
	fs.StringVar(&p.Plan, "plan", "", "standard (default) or enterprise: the REST rate limit")
	_ = cmd.RegisterFlagCompletionFunc("plan", cobra.FixedCompletions([]string{"standard", "enterprise"}, cobra.ShellCompDirectiveNoFileComp))
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if p.ApplicationToken != "" && p.ApplicationToken != "generate" {
			fmt.Fprintln(a.env.Stderr, "warning: a token on the command line is visible to every user of this machine (ps, shell history); prefer --application-token-file or --application-token generate")
		}
		return portalsAdd(*file, p, printerFor(*out, a.env.Stdout))
	})
	return cmd
}

func portalsAdd(file string, p portals.FilePortal, pr printer) error {
	if file == "" {
		return usageErr("--portals-file (or B24HUB_PORTALS_FILE) is required")
	}
	if p.MemberID == "" {
		return usageErr("--member-id is required (auth[member_id] of the portal's events)")
	}
	if (p.ApplicationToken == "") == (p.ApplicationTokenFile == "") {
		return usageErr("give exactly one of --application-token-file and --application-token")
	}
	generated := ""
	if p.ApplicationToken == "generate" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		generated = hex.EncodeToString(b[:])
		p.ApplicationToken = generated
	}
	doc, err := loadPortalsDoc(file)
	if err != nil {
		return fail(ExitError, "%s: %v", file, err)
	}
	if doc.find(p.MemberID) != nil {
		return fail(ExitError, "portal %s is already in %s — use `b24ctl portals rotate-token` to change its token", p.MemberID, file)
	}
	if err := doc.add(p); err != nil {
		return fail(ExitError, "%v", err)
	}
	if err := doc.save(file); err != nil {
		return fail(ExitError, "%s: %v", file, err)
	}
	res := map[string]any{"added": p.MemberID, "file": file}
	if generated != "" {
		res["application_token"] = generated
	}
	return pr.print(res, func(w io.Writer) {
		fmt.Fprintf(w, "added portal %s to %s; services reload the file within seconds\n", p.MemberID, file)
		if generated != "" {
			fmt.Fprintf(w, "generated application token (shown once): %s\n", generated)
		}
	})
}

func (a *app) portalsRotateCmd() *cobra.Command {
	var member, token string
	var fromStdin bool
	cmd := &cobra.Command{
		Use:     "rotate-token",
		Short:   "replace a file portal's application token (after regenerating it in Bitrix24)",
		Example: "  b24ctl portals rotate-token --portals-file portals.yaml --member-id a223c6b3710f85df22e9377d6c4f7553 --application-token-stdin < token.txt",
		Args:    noArgs,
	}
	file := a.portalsFileFlag(cmd)
	fs := cmd.Flags()
	fs.StringVar(&member, "member-id", "", "the portal's member_id (required)")
	fs.BoolVar(&fromStdin, "application-token-stdin", false, "read the new token from standard input (asked for without echo on a terminal)")
	fs.StringVar(&token, "application-token", "", "the new token (deprecated: visible in ps; use --application-token-stdin)")
	_ = fs.MarkDeprecated("application-token", "it shows the token in ps; use --application-token-stdin")
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if fromStdin && token != "" {
			return usageErr("give --application-token-stdin or --application-token, not both")
		}
		switch {
		case fromStdin && a.env.ReadSecret != nil:
			// Standard input is a terminal: do not echo the token.
			t, err := a.env.ReadSecret("new application token (input hidden): ")
			if err != nil {
				return fail(ExitError, "read token: %v", err)
			}
			token = strings.TrimSpace(t)
		case fromStdin:
			b, err := io.ReadAll(io.LimitReader(a.env.Stdin, 4096))
			if err != nil {
				return fail(ExitError, "read token: %v", err)
			}
			token = strings.TrimSpace(string(b))
		}
		return portalsRotate(*file, member, token, printerFor(*out, a.env.Stdout))
	})
	return cmd
}

func portalsRotate(file, member, token string, pr printer) error {
	if member == "" {
		return usageErr("--member-id is required")
	}
	if token == "" {
		return usageErr("give the new token on standard input with --application-token-stdin")
	}
	if file == "" {
		return usageErr("--portals-file (or B24HUB_PORTALS_FILE) is required")
	}
	doc, err := loadPortalsDoc(file)
	if err != nil {
		return fail(ExitError, "%s: %v", file, err)
	}
	entry := doc.find(member)
	if entry == nil {
		return fail(ExitError, "portal %s is not in %s; portals installed as apps get their token from ONAPPINSTALL — reinstall the app to rotate it", member, file)
	}
	if path := scalar(entry, "application_token_file"); path != "" {
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			return fail(ExitError, "write %s: %v — update the secret that backs this file", path, err)
		}
	} else {
		setScalar(entry, "application_token", token)
		if err := doc.save(file); err != nil {
			return fail(ExitError, "%s: %v", file, err)
		}
	}
	sum := portals.HashToken(token)
	return pr.print(map[string]any{"rotated": member, "token_sha256": sum}, func(w io.Writer) {
		fmt.Fprintf(w, "rotated the application token of %s (sha256 %s…); the ingress picks it up within seconds\n", member, sum[:12])
	})
}

func (a *app) portalsHealthCmd() *cobra.Command {
	var member string
	cmd := &cobra.Command{
		Use:     "health",
		Short:   "show each portal's last events, silences and firing alerts (from the monitor)",
		Example: "  b24ctl portals health --member-id a223c6b3710f85df22e9377d6c4f7553",
		Args:    noArgs,
	}
	cmd.Flags().StringVar(&member, "member-id", "", "one portal (default: all)")
	mon := a.monitorFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		m, err := a.monitor(cmd, mon)
		if err != nil {
			return err
		}
		return portalsHealth(ctx, m, member, printerFor(*out, a.env.Stdout))
	})
	return cmd
}

func portalsHealth(ctx context.Context, m *monitorClient, member string, pr printer) error {
	var list []map[string]any
	if member != "" {
		var one map[string]any
		if err := m.do(ctx, http.MethodGet, "/portals/"+url.PathEscape(member), nil, nil, &one); err != nil {
			return err
		}
		list = []map[string]any{one}
	} else {
		var all struct {
			Portals []map[string]any `json:"portals"`
		}
		if err := m.do(ctx, http.MethodGet, "/portals", nil, nil, &all); err != nil {
			return err
		}
		list = all.Portals
	}
	if list == nil {
		list = []map[string]any{}
	}
	err := pr.print(map[string]any{"portals": list}, func(w io.Writer) {
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
	if err != nil {
		return err
	}
	for _, p := range list {
		if a, _ := p["alerts"].([]any); len(a) > 0 {
			return fail(ExitFindings, "alerts firing")
		}
	}
	return nil
}
