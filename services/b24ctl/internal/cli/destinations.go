package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"
)

func (a *app) destinationsCmd() *cobra.Command {
	var name string
	list := &cobra.Command{Use: "list", Short: "the declared HTTP destinations: endpoint, what each receives, circuit state and backlog (exit 4 when one is paused)",
		Example: "  b24ctl destinations list\n  b24ctl destinations list --name crm-php -o json", Args: noArgs}
	list.Flags().StringVar(&name, "name", "", "one destination (default: all)")
	nats := a.natsFlags(list)
	out := outputFlag(list)
	list.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ctx, cancel := bounded(ctx, cmd)
		defer cancel()
		return listDestinations(ctx, cmd, nats, name, printerFor(*out, a.env.Stdout))
	})
	return group("destinations", "HTTP endpoints that receive events and changes (docs/destinations.md)", list)
}

// listDestinations asks a running destinations service (any replica) for
// its destinations.
func listDestinations(ctx context.Context, cmd *cobra.Command, o *natsOptions, name string, pr printer) error {
	nc, _, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer nc.Close()
	req, err := json.Marshal(eventbus.DestinationsRequest{Name: name})
	if err != nil {
		return fail(ExitError, "encode request: %v", err)
	}
	msg, err := nc.RequestWithContext(ctx, eventbus.ControlDestinationsList, req)
	if errors.Is(err, nats.ErrNoResponders) {
		return fail(ExitUnavailable, "no destinations service answers on %s — start it (services/destinations) or the local stack", eventbus.ControlDestinationsList)
	}
	if err != nil {
		return fail(ExitUnavailable, "request %s: %v", eventbus.ControlDestinationsList, err)
	}
	var rep eventbus.DestinationsReply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return fail(ExitError, "bad reply from the destinations service: %v", err)
	}
	if rep.Error != "" {
		return fail(ExitError, "%s", rep.Error)
	}
	if rep.Destinations == nil {
		rep.Destinations = []eventbus.DestinationInfo{}
	}
	if err := pr.print(rep, func(w io.Writer) { printDestinations(w, rep) }); err != nil {
		return err
	}
	paused := 0
	for _, d := range rep.Destinations {
		if d.Paused || d.State != "delivering" {
			paused++
		}
	}
	if paused > 0 {
		return fail(ExitFindings, "%d destination(s) paused: their endpoints keep failing (docs/runbooks/destination-paused.md)", paused)
	}
	return nil
}

func printDestinations(w io.Writer, rep eventbus.DestinationsReply) {
	if len(rep.Destinations) == 0 {
		fmt.Fprintf(w, "no destinations declared (file %q)\n", rep.File)
		return
	}
	rows := make([][]string, 0, len(rep.Destinations))
	for _, d := range rep.Destinations {
		state := d.State
		if d.Paused {
			state = "paused until " + d.PausedUntil.UTC().Format(time.TimeOnly)
		}
		rows = append(rows, []string{d.Name, d.URL, strings.Join(d.Subjects, ","), state, strconv.Itoa(d.Failures),
			strconv.FormatUint(d.Pending, 10), strconv.Itoa(d.AckPending)})
	}
	table(w, []string{"NAME", "URL", "RECEIVES", "STATE", "FAILURES", "PENDING", "IN FLIGHT"}, rows)
}
