package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

func (a *app) subscriptionsCmd() *cobra.Command {
	return group("subscriptions", "compare and repair each portal's event bindings",
		a.subscriptionsSubCmd("diff", "compare each portal's event.bind rows with the declared ones (exit 4 on drift)",
			"  b24ctl subscriptions diff --member-id a223c6b3710f85df22e9377d6c4f7553", false),
		a.subscriptionsSubCmd("apply", "bind what is missing and unbind what is not declared",
			"  b24ctl subscriptions apply -o json", true),
	)
}

func (a *app) subscriptionsSubCmd(use, short, example string, apply bool) *cobra.Command {
	var member string
	cmd := &cobra.Command{Use: use, Short: short, Example: example, Args: noArgs}
	cmd.Flags().StringVar(&member, "member-id", "", "one portal (default: every installed portal)")
	nats := a.natsFlags(cmd)
	out := outputFlag(cmd)
	cmd.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ctx, cancel := bounded(ctx, cmd)
		defer cancel()
		return subs(ctx, cmd, nats, member, apply, printerFor(*out, a.env.Stdout))
	})
	return cmd
}

// subs asks a running subscriptions service (it holds the credentials) to
// diff or apply.
func subs(ctx context.Context, cmd *cobra.Command, o *natsOptions, member string, apply bool, pr printer) error {
	nc, _, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer nc.Close()
	subject := eventbus.ControlSubscriptionsDiff
	if apply {
		subject = eventbus.ControlSubscriptionsApply
	}
	req, err := json.Marshal(eventbus.SubscriptionsRequest{MemberID: member})
	if err != nil {
		return fail(ExitError, "encode request: %v", err)
	}
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
	if rep.Portals == nil {
		rep.Portals = []eventbus.SubscriptionPlan{}
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
	if err := pr.print(rep, func(w io.Writer) { printPlans(w, rep, apply) }); err != nil {
		return err
	}
	switch {
	case failed > 0:
		return failShown(ExitError, "%d portal(s) could not be checked or repaired (see the error column)", failed)
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
			fmt.Fprintf(w, "  run `b24ctl subscriptions apply --member-id %s` to repair\n", p.MemberID)
		}
	}
}
