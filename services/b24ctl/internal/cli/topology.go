package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
)

func (a *app) topologyCmd() *cobra.Command {
	var replicas int
	apply := &cobra.Command{
		Use:     "apply",
		Short:   "create or update the streams and KV buckets; list the consumers",
		Example: "  b24ctl topology apply --replicas 3",
		Args:    noArgs,
	}
	apply.Flags().IntVar(&replicas, "replicas", 1, "stream and bucket replicas (1..5; 3 in production)")
	applyNATS := a.natsFlags(apply)
	applyOut := outputFlag(apply)
	apply.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ctx, cancel := bounded(ctx, cmd)
		defer cancel()
		return topology(ctx, cmd, applyNATS, true, replicas, printerFor(*applyOut, a.env.Stdout))
	})
	show := &cobra.Command{
		Use:     "show",
		Short:   "list the streams, their consumers and the KV buckets",
		Example: "  b24ctl topology show -o json",
		Args:    noArgs,
	}
	showNATS := a.natsFlags(show)
	showOut := outputFlag(show)
	show.RunE = action(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		ctx, cancel := bounded(ctx, cmd)
		defer cancel()
		return topology(ctx, cmd, showNATS, false, 0, printerFor(*showOut, a.env.Stdout))
	})
	return group("topology", "the NATS streams, consumers and KV buckets", apply, show)
}

// streamView is one stream in the topology output.
type streamView struct {
	Name      string         `json:"name"`
	Subjects  []string       `json:"subjects"`
	Messages  uint64         `json:"messages"`
	Replicas  int            `json:"replicas"`
	Consumers []consumerView `json:"consumers"`
	Missing   bool           `json:"missing,omitempty"`
}

type consumerView struct {
	Name       string   `json:"name"`
	Filters    []string `json:"filters"`
	Pending    uint64   `json:"pending"`
	AckPending int      `json:"ack_pending"`
	Owner      string   `json:"owner,omitempty"`
}

// topology provisions (apply) and lists. Consumers are only listed: each
// is owned by the service whose consumer runtime defines it.
func topology(ctx context.Context, cmd *cobra.Command, o *natsOptions, apply bool, replicas int, pr printer) error {
	if apply {
		if err := (eventbus.StreamOptions{Replicas: replicas}).Validate(); err != nil {
			return usageErr("%v", err)
		}
	}
	if apply {
		o.identity = AdminUser
	}
	nc, js, err := o.connect(cmd)
	if err != nil {
		return err
	}
	defer nc.Close()
	if apply {
		if err := eventbus.Provision(ctx, js, eventbus.StreamOptions{Replicas: replicas}); err != nil {
			return fail(ExitError, "%v — check that JetStream is enabled on the server and the account may create streams", err)
		}
	}
	var out struct {
		Applied bool         `json:"applied"`
		Streams []streamView `json:"streams"`
		Buckets []string     `json:"buckets"`
	}
	out.Applied, out.Buckets = apply, []string{}
	for _, cfg := range eventbus.Streams(eventbus.StreamOptions{}) {
		v := streamView{Name: cfg.Name, Subjects: cfg.Subjects, Consumers: []consumerView{}}
		st, err := js.Stream(ctx, cfg.Name)
		if err != nil {
			v.Missing = true
			out.Streams = append(out.Streams, v)
			continue
		}
		info, err := st.Info(ctx)
		if err == nil {
			v.Messages, v.Replicas = info.State.Msgs, info.Config.Replicas
		}
		lister := st.ListConsumers(ctx)
		for ci := range lister.Info() {
			cv := consumerView{Name: ci.Name, Filters: filters(ci.Config), Pending: ci.NumPending, AckPending: ci.NumAckPending,
				Owner: ci.Config.Metadata["b24hub.owner"]}
			v.Consumers = append(v.Consumers, cv)
		}
		out.Streams = append(out.Streams, v)
	}
	for _, b := range eventbus.Buckets(eventbus.StreamOptions{}) {
		if _, err := js.KeyValue(ctx, b.Bucket); err == nil {
			out.Buckets = append(out.Buckets, b.Bucket)
		}
	}
	err = pr.print(out, func(w io.Writer) {
		if apply {
			fmt.Fprintln(w, "streams and buckets applied")
		}
		var rows [][]string
		for _, s := range out.Streams {
			if s.Missing {
				rows = append(rows, []string{s.Name, "MISSING (run b24ctl topology apply)", "", "", ""})
				continue
			}
			rows = append(rows, []string{s.Name, strconv.FormatUint(s.Messages, 10), strconv.Itoa(s.Replicas), "", ""})
			for _, cv := range s.Consumers {
				rows = append(rows, []string{"  " + cv.Name, "", "", strconv.FormatUint(cv.Pending, 10), strconv.Itoa(cv.AckPending)})
			}
		}
		table(w, []string{"STREAM/CONSUMER", "MESSAGES", "REPLICAS", "PENDING", "ACK PENDING"}, rows)
		fmt.Fprintf(w, "buckets: %v\n", out.Buckets)
	})
	if err != nil {
		return err
	}
	for _, s := range out.Streams {
		if s.Missing {
			return fail(ExitFindings, "streams missing")
		}
	}
	return nil
}

func filters(cfg jetstream.ConsumerConfig) []string {
	if cfg.FilterSubject != "" {
		return []string{cfg.FilterSubject}
	}
	return cfg.FilterSubjects
}
