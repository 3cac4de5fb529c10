package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/b24hub/b24hub/libs/eventbus"
	"io"
	"strings"

	"github.com/nats-io/nats.go"
)

func init() {
	var member string
	memberFlag := func(fs *flag.FlagSet, _ *opts) {
		fs.StringVar(&member, "member-id", "", "one portal (default: every installed portal)")
	}
	register(&command{
		path:    "subscriptions diff",
		summary: "compare each portal's event.bind rows with the declared ones (exit 4 on drift)",
		example: "b24ctl subscriptions diff --member-id a223c6b3710f85df22e9377d6c4f7553",
		flags:   memberFlag,
		run:     func(ctx context.Context, c *call) error { return subs(ctx, c, member, false) },
	})
	register(&command{
		path:    "subscriptions apply",
		summary: "bind what is missing and unbind what is not declared",
		example: "b24ctl subscriptions apply --output json",
		flags:   memberFlag,
		run:     func(ctx context.Context, c *call) error { return subs(ctx, c, member, true) },
	})
}

// subs asks a running subscriptions service (it holds the credentials) to
// diff or apply.
func subs(ctx context.Context, c *call, member string, apply bool) error {
	nc, _, err := c.connect(ctx)
	if err != nil {
		return err
	}
	defer nc.Close()
	subject := eventbus.ControlSubscriptionsDiff
	if apply {
		subject = eventbus.ControlSubscriptionsApply
	}
	req, _ := json.Marshal(eventbus.SubscriptionsRequest{MemberID: member})
	msg, err := nc.RequestWithContext(ctx, subject, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return fail(ExitUnavailable, "no subscriptions service answers on %s — start it (services/subscriptions) or the local stack", subject)
	}
	if err != nil {
		return fail(ExitUnavailable, "request %s: %v", subject, err)
	}
	var rep eventbus.SubscriptionsReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fail(ExitError, "bad reply from the subscriptions service: %v", err)
	}
	if rep.Error != "" {
		return fail(ExitError, "%s", rep.Error)
	}
	drift, failed := 0, 0
	for _, p := range rep.Portals {
		if p.Error != "" || len(p.Failed) > 0 {
			failed++
		}
		if !apply {
			drift += len(p.Bind) + len(p.Unbind)
		}
	}
	c.emit(rep, func(w io.Writer) { printPlans(w, rep, apply) })
	switch {
	case failed > 0:
		return fail(ExitError, "%d portal(s) could not be checked or repaired (see the error column)", failed)
	case drift > 0:
		return fail(ExitFindings, "drift")
	}
	return nil
}

func printPlans(w io.Writer, rep eventbus.SubscriptionsReply, apply bool) {
	if len(rep.Portals) == 0 {
		fmt.Fprintln(w, "no installed portal with stored credentials")
		return
	}
	for _, p := range rep.Portals {
		fmt.Fprintf(w, "portal %s (mode %s): %d in sync", p.MemberID, p.Mode, p.InSync)
		if p.Error != "" {
			fmt.Fprintf(w, ", error: %s\n", p.Error)
			continue
		}
		fmt.Fprintln(w)
		show := func(sign string, bs []eventbus.SubscriptionBinding) {
			for _, b := range bs {
				target := b.Handler
				if b.Offline {
					target = "(offline queue)"
				}
				fmt.Fprintf(w, "  %s %-24s %s\n", sign, b.Event, target)
			}
		}
		if apply {
			show("+", p.Bound)
			show("-", p.Unbound)
			for _, f := range p.Failed {
				fmt.Fprintf(w, "  ! %s\n", f)
			}
			if len(p.Bound)+len(p.Unbound)+len(p.Failed) == 0 {
				fmt.Fprintln(w, "  nothing to change")
			}
			continue
		}
		show("+", p.Bind)
		show("-", p.Unbind)
		if len(p.Bind)+len(p.Unbind) == 0 {
			fmt.Fprintln(w, "  in sync")
		} else {
			fmt.Fprintf(w, "  %s\n", strings.TrimSpace("run `b24ctl subscriptions apply --member-id "+p.MemberID+"` to repair"))
		}
	}
}
