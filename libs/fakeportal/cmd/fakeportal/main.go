// Command fakeportal serves an in-memory Bitrix24 portal (package
// fakeportal) for local runs, and can drive an ingress with real-looking
// events: run with -h for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fakeportal:", err)
		os.Exit(1)
	}
}

const usage = `fakeportal serves a fake Bitrix24 portal: REST over incoming webhooks
(/rest/{user}/{code}/{method}) and OAuth (/rest/{method}?auth=…), its own OAuth
server (/oauth/token/), the documented limits, batch, events and the offline
queue, plus a control API under /_fake/ (stats, deliveries, scenario, install,
uninstall, webhook, expire-tokens).

To drive an ingress, point -target at its handler URL: the scenario's events
are POSTed there form-encoded, like an outgoing webhook, with -member-id and
-application-token in the auth block.

Examples:
  fakeportal -addr 127.0.0.1:8089
  fakeportal -target http://127.0.0.1:8080/b24/events -member-id a223c6b3710f85df22e9377d6c4f7553 \
      -application-token 51856fefc120afa4b628cc82d3935cce -scenario bulk-edit:1000 -exit
  curl -s -XPOST 127.0.0.1:8089/_fake/scenario -d '{"scenario":"deal-add:3","handler":"http://127.0.0.1:8080/b24/events","application_token":"…"}'

Flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fakeportal", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	var (
		addr      = fs.String("addr", "127.0.0.1:8089", "listen address")
		domain    = fs.String("domain", "", "portal host used in client_endpoint and event auth blocks (default: the listen address)")
		memberID  = fs.String("member-id", "", "the portal's member_id (default d897063e1ce7c5eb9f04b9751eef5915)")
		rate      = fs.Float64("rate", 2, "leaky bucket drain rate in requests per second (Enterprise: 5)")
		burst     = fs.Int("burst", 50, "leaky bucket size (Enterprise: 250)")
		webhook   = fs.String("webhook", "1:fakewebhookcode", "incoming webhook to create as USER:CODE; empty for none")
		clientID  = fs.String("app-client-id", "", "install an OAuth app with this client_id and print its tokens")
		secret    = fs.String("app-client-secret", "fakesecret", "the installed app's client_secret")
		tokenTTL  = fs.Duration("token-ttl", time.Hour, "access token lifetime")
		seed      = fs.Int("seed-deals", 0, "create this many deals at start, without events")
		target    = fs.String("target", "", "handler URL that receives the scenario's events as an outgoing webhook")
		appToken  = fs.String("application-token", "", "application_token in the pushed auth block (default: generated and printed)")
		events    = fs.String("events", "ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMDEALDELETE,ONTASKADD,ONTASKUPDATE,ONTASKDELETE,ONVOXIMPLANTCALLEND,ONAPPTEST", "events the -target webhook receives, comma-separated")
		scenario  = fs.String("scenario", "", "scenario to run at start, NAME[:COUNT]; one of "+fakeportal.ScenarioNames())
		exit      = fs.Bool("exit", false, "exit once the scenario's pushes are delivered instead of serving")
		dropRate  = fs.Float64("drop-rate", 0, "share of event pushes never sent, 0..1")
		latency   = fs.Duration("latency", 0, "delay added to every REST answer")
		errRate   = fs.Float64("error-rate", 0, "share of REST answers that are 500 INTERNAL_SERVER_ERROR, 0..1")
		htmlRate  = fs.Float64("html-rate", 0, "share of REST answers that are 502 HTML pages, 0..1")
		recording = fs.Duration("recording-delay", 0, "delay before a call's recording appears in voximplant.statistic.get")
	)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var sc fakeportal.Scenario
	if *scenario != "" {
		var err error
		if sc, err = fakeportal.ParseScenario(*scenario); err != nil {
			return err
		}
		if *target == "" {
			return errors.New("-scenario needs -target (or use POST /_fake/scenario)")
		}
	}

	p, err := fakeportal.New(fakeportal.Config{
		Addr: *addr, Domain: *domain, MemberID: *memberID, Rate: *rate, Burst: *burst,
		TokenTTL: *tokenTTL, RecordingDelay: *recording,
		Faults: fakeportal.Faults{DropRate: *dropRate, Latency: *latency, ServerErrorRate: *errRate, HTMLRate: *htmlRate},
	})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(stdout, "fakeportal listening on %s\n  member_id       %s\n  client_endpoint %s\n  server_endpoint %s\n",
		p.URL(), p.MemberID(), p.ClientEndpoint(), p.ServerEndpoint())
	if *webhook != "" {
		user, code, ok := strings.Cut(*webhook, ":")
		uid, err := strconv.ParseInt(user, 10, 64)
		if !ok || err != nil || uid <= 0 || code == "" {
			return fmt.Errorf("-webhook %q: want USER:CODE", *webhook)
		}
		fmt.Fprintf(stdout, "  webhook         %s\n", p.AddWebhook(uid, code))
	}
	if *clientID != "" {
		in := p.InstallApp(fakeportal.App{ClientID: *clientID, ClientSecret: *secret})
		fmt.Fprintf(stdout, "  app             client_id=%s access_token=%s refresh_token=%s application_token=%s\n",
			in.ClientID, in.AccessToken, in.RefreshToken, in.ApplicationToken)
	}
	for i := range *seed {
		p.CreateDeal(map[string]string{"TITLE": "Seed deal " + strconv.Itoa(i+1)}, false)
	}

	if *target != "" {
		id, tok := p.AddOutgoingWebhook(fakeportal.OutgoingWebhook{Handler: *target, ApplicationToken: *appToken, Events: splitList(*events)})
		fmt.Fprintf(stdout, "  outgoing webhook %d -> %s application_token=%s\n", id, *target, tok)
	}
	if sc.Name != "" {
		ids, err := p.RunScenario(sc)
		if err != nil {
			return err
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err = p.Drain(dctx)
		cancel()
		if err != nil {
			return fmt.Errorf("waiting for pushes: %w", err)
		}
		report(stdout, p, sc, len(ids))
		if *exit {
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

func report(w io.Writer, p *fakeportal.Portal, sc fakeportal.Scenario, touched int) {
	s := p.Stats()
	fmt.Fprintf(w, "scenario %s:%d touched %d entities: %d pushes, %d sent, %d failed, %d dropped\n",
		sc.Name, sc.Count, touched, s.EventsFired, s.PushesSent, s.PushesFailed, s.PushesDropped)
	stats := p.HandlerStats()
	urls := make([]string, 0, len(stats))
	for u := range stats {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		h := stats[u]
		n := h.Sent + h.Failed
		avg := time.Duration(0)
		if n > 0 {
			avg = h.TotalDuration / time.Duration(n)
		}
		fmt.Fprintf(w, "  %s: sent %d, failed %d, slow %d, avg %v, max %v\n", u, h.Sent, h.Failed, h.Slow,
			avg.Round(time.Microsecond), h.MaxDuration.Round(time.Microsecond))
	}
}

func splitList(s string) []string {
	var out []string
	for _, e := range strings.Split(s, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, strings.ToUpper(e))
		}
	}
	return out
}
