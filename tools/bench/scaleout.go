package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	eventsv1 "github.com/b24hub/b24hub/proto/gen/go/b24hub/events/v1"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// scaleoutConfig is one scale-out comparison.
type scaleoutConfig struct {
	replicas       []int // replica counts compared, in order
	rounds         int
	portals        int
	dealsPerPortal int
	updates        int           // changes per deal, each followed by its event
	latency        time.Duration // of every fake-portal REST answer
	orderRounds    int           // untimed rounds of changes to the first orderDeals deals of every portal
	orderDeals     int
	env            []string
}

// scaleoutResult is one run's figures and checks.
type scaleoutResult struct {
	replicas    int
	events      int
	took        time.Duration
	limitHits   int64   // QUERY_LIMIT_EXCEEDED answers, all portals
	maxLevel    float64 // the highest bucket level any portal saw
	requests    int64   // REST requests, all portals
	fetched     int64   // commands inside batch requests (deals fetched)
	doneTwice   int     // events with more than one final outcome
	retries     int     // retry outcomes
	changes     int
	outOfOrder  int // a change whose OPPORTUNITY went down, or two changes from the same state
	orderChecks int // changes that followed an earlier change of the same deal
	stale       int // deals whose mirror is not the portal's final state
}

// scaleoutMain runs deal-sync alone as 1 and as N replicas (separate
// processes, one durable JetStream consumer, one KV limiter, one database)
// against fake portals that answer every REST call after -latency, and
// compares how fast each drains the same events: every deal of every portal
// changed -updates times, each change followed by its ONCRMDEALUPDATE
// published straight to the stream while the replicas run. It checks what
// replicas must not break: no portal's limit exceeded, no event settled
// twice, every deal's changes in order (OPPORTUNITY only grows and no two
// changes start from the same state), and the mirror equal to the portal.
func scaleoutMain(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("scaleout", flag.ContinueOnError)
	var cfg scaleoutConfig
	reps := fs.String("replicas", "1,3", "replica counts to compare")
	fs.IntVar(&cfg.rounds, "rounds", 1, "rounds; each runs every replica count once, the order alternating")
	fs.IntVar(&cfg.portals, "portals", 40, "fake portals")
	fs.IntVar(&cfg.dealsPerPortal, "deals", 100, "deals per portal")
	fs.IntVar(&cfg.updates, "updates", 2, "changes (and events) per deal")
	fs.DurationVar(&cfg.latency, "latency", 250*time.Millisecond, "delay of every fake-portal REST answer")
	fs.IntVar(&cfg.orderRounds, "order-rounds", 6, "after the timed load, rounds of changes to -order-deals deals of every portal, one REST latency apart, for the order check")
	fs.IntVar(&cfg.orderDeals, "order-deals", 10, "deals per portal changed in each order round")
	env := fs.String("env", "B24HUB_DEALSYNC_CONCURRENCY=2,B24HUB_DEALSYNC_MAX_CONCURRENCY=2", "deal-sync environment, KEY=VALUE[,...]: what bounds one replica")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, r := range strings.Split(*reps, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n < 1 || n > 16 {
			return fmt.Errorf("scaleout: -replicas %q: want counts from 1 to 16", *reps)
		}
		cfg.replicas = append(cfg.replicas, n)
	}
	for _, kv := range strings.Split(*env, ",") {
		if kv = strings.TrimSpace(kv); kv != "" {
			cfg.env = append(cfg.env, kv)
		}
	}
	dir, err := workspaceBins(ctx, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "scale-out: %d portals × %d deals × %d changes, REST latency %s, deal-sync environment %s\n",
		cfg.portals, cfg.dealsPerPortal, cfg.updates, cfg.latency, strings.Join(cfg.env, " "))
	var all []scaleoutResult
	for r := range cfg.rounds {
		order := cfg.replicas
		if r%2 == 1 {
			order = make([]int, len(cfg.replicas))
			for i, n := range cfg.replicas {
				order[len(order)-1-i] = n
			}
		}
		for _, n := range order {
			res, err := scaleoutRun(ctx, out, filepath.Join(dir, "deal-sync"), n, cfg)
			if err != nil {
				return fmt.Errorf("round %d, %d replicas: %w", r+1, n, err)
			}
			all = append(all, res)
		}
	}
	fmt.Fprintf(out, "\n| replicas | events | drained in | events/s | REST requests | deals per request | QUERY_LIMIT_EXCEEDED | max bucket level | settled twice | retries | changes | order checks | out of order | mirror ≠ portal |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	rate := map[int][]float64{}
	for _, r := range all {
		eps := float64(r.events) / r.took.Seconds()
		rate[r.replicas] = append(rate[r.replicas], eps)
		fmt.Fprintf(out, "| %d | %d | %s | %.0f | %d | %.1f | %d | %.1f | %d | %d | %d | %d | %d | %d |\n", r.replicas, r.events, r.took.Round(100*time.Millisecond),
			eps, r.requests, float64(r.fetched)/float64(max(r.requests, 1)), r.limitHits, r.maxLevel, r.doneTwice, r.retries, r.changes, r.orderChecks, r.outOfOrder, r.stale)
	}
	if len(cfg.replicas) >= 2 {
		a, b := medianF(rate[cfg.replicas[0]]), medianF(rate[cfg.replicas[len(cfg.replicas)-1]])
		fmt.Fprintf(out, "\nthroughput %d replicas ÷ %d: %.2f×\n", cfg.replicas[len(cfg.replicas)-1], cfg.replicas[0], b/a)
	}
	return nil
}

// scaleoutRun is one run on a fresh broker, database and portals.
func scaleoutRun(ctx context.Context, out io.Writer, bin string, replicas int, cfg scaleoutConfig) (res scaleoutResult, err error) {
	res.replicas = replicas
	c := &cluster{procs: map[string]*proc{}}
	defer c.close()
	if c.dir, err = os.MkdirTemp("", "b24hub-bench-scaleout-run-*"); err != nil {
		return res, err
	}
	c.stops = append(c.stops, func() { os.RemoveAll(c.dir) })
	ns, stop, err := startBroker()
	if err != nil {
		return res, err
	}
	c.stops = append(c.stops, stop)
	c.natsURL = ns.ClientURL()
	if c.nc, err = nats.Connect(c.natsURL); err != nil {
		return res, err
	}
	c.stops = append(c.stops, c.nc.Close)
	if c.js, err = jetstream.New(c.nc); err != nil {
		return res, err
	}
	if err := eventbus.Provision(ctx, c.js, eventbus.StreamOptions{}); err != nil {
		return res, err
	}
	if err := c.createDatabase(ctx); err != nil {
		return res, err
	}
	if err := c.startPortals(clusterConfig{portals: cfg.portals, dealsPerPortal: cfg.dealsPerPortal, latency: cfg.latency}); err != nil {
		return res, err
	}
	env := []string{
		"B24HUB_NATS_URL=" + c.natsURL,
		"B24HUB_DATABASE_URL=" + c.dbURL,
		"B24HUB_PORTALS_FILE=" + filepath.Join(c.dir, "portals.yaml"),
		"B24HUB_LOG_LEVEL=warn",
		"B24HUB_CREDENTIALS_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
	env = append(env, cfg.env...)
	for i := range replicas {
		admin := freeAddr()
		name := fmt.Sprintf("deal-sync-%d", i+1)
		p := &proc{name: name, ready: "http://" + admin + "/readyz", log: filepath.Join(c.dir, name+".log")}
		logf, err := os.Create(p.log)
		if err != nil {
			return res, err
		}
		p.cmd = exec.Command(bin)
		p.cmd.Env = append(append([]string(nil), env...), "B24HUB_ADMIN_ADDR="+admin)
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if err := p.cmd.Start(); err != nil {
			return res, err
		}
		c.procs[name] = p
	}
	c.stops = append(c.stops, c.stopProcs)
	deadline := time.Now().Add(90 * time.Second)
	for _, p := range c.procs {
		for !ready(p.ready) {
			if time.Now().After(deadline) {
				return res, fmt.Errorf("%s not ready; log:\n%s", p.name, tailFile(p.log, 2000))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// The load: every deal changes, then its event is published, round
	// after round, while the replicas work.
	seq := 0
	publish := func(u, pi int, p *benchPortal, d int) error {
		p.fake.UpdateDeal(int64(d), map[string]string{"OPPORTUNITY": strconv.Itoa(u*1_000_000 + d)}, false)
		seq++
		id := fmt.Sprintf("scaleout-%d-%d-%d", u, pi, d)
		env := &eventsv1.Envelope{MessageId: id, MemberId: p.fake.MemberID(), Event: "ONCRMDEALUPDATE",
			EntityId: strconv.Itoa(d), Source: eventsv1.Source_SOURCE_PUSH}
		data, _ := proto.Marshal(env)
		_, err := c.js.PublishAsync(eventbus.RawEvent(p.fake.MemberID(), "ONCRMDEALUPDATE"), data, jetstream.WithMsgID(id))
		return err
	}
	cons, err := c.js.Consumer(ctx, eventbus.StreamEvents, "deal-sync")
	if err != nil {
		return res, err
	}
	drain := func(since time.Time) error {
		select {
		case <-c.js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			return fmt.Errorf("publishing the events took over a minute")
		}
		for {
			info, err := cons.Info(ctx)
			if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.AckFloor.Stream >= uint64(seq) {
				return nil
			}
			if time.Since(since) > 10*time.Minute {
				return fmt.Errorf("not drained after 10 minutes")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	start := time.Now()
	for u := 1; u <= cfg.updates; u++ {
		for pi, p := range c.portals {
			for d := 1; d <= cfg.dealsPerPortal; d++ {
				if err := publish(u, pi, p, d); err != nil {
					return res, err
				}
			}
		}
	}
	res.events = seq
	if err := drain(start); err != nil {
		return res, err
	}
	res.took = time.Since(start)
	fmt.Fprintf(out, "%d replica(s): %d events drained in %s\n", replicas, res.events, res.took.Round(100*time.Millisecond))

	for _, p := range c.portals {
		st := p.fake.Stats()
		res.limitHits += st.QueryLimitExceeded
		res.maxLevel = max(res.maxLevel, st.MaxLevel)
		res.requests += st.Requests
		res.fetched += st.BatchCommands
	}
	// The order phase, not timed: the first -order-deals deals of every
	// portal change again, round after round, each round one REST latency
	// after the last, so a deal's next event arrives while its previous
	// fetch may still be running — on another replica — and fetches see
	// different states. The order check below then has changes to check.
	last := cfg.updates
	if cfg.orderRounds > 0 && cfg.orderDeals > 0 {
		ostart := time.Now()
		for r := 1; r <= cfg.orderRounds; r++ {
			last = cfg.updates + r
			for pi, p := range c.portals {
				for d := 1; d <= min(cfg.orderDeals, cfg.dealsPerPortal); d++ {
					if err := publish(last, pi, p, d); err != nil {
						return res, err
					}
				}
			}
			time.Sleep(cfg.latency)
		}
		if err := drain(ostart); err != nil {
			return res, fmt.Errorf("order phase: %w", err)
		}
	}
	// Outcomes: one final outcome per event.
	final := map[string]int{}
	if err := readStream(ctx, c.js, eventbus.StreamOutcomes, eventbus.OutcomesPrefix+".deal-sync.>", func(m jetstream.Msg) {
		o := &eventsv1.Outcome{}
		if proto.Unmarshal(m.Data(), o) != nil {
			return
		}
		switch o.Status {
		case eventsv1.OutcomeStatus_OUTCOME_STATUS_DONE, eventsv1.OutcomeStatus_OUTCOME_STATUS_SKIPPED:
			final[o.EventId]++
		case eventsv1.OutcomeStatus_OUTCOME_STATUS_RETRY:
			res.retries++
		}
	}); err != nil {
		return res, err
	}
	for _, n := range final {
		if n > 1 {
			res.doneTwice++
		}
	}
	if len(final) != seq {
		return res, fmt.Errorf("%d of %d events have a final outcome", len(final), seq)
	}
	// Changes: per deal, OPPORTUNITY only grows and no two changes leave
	// the same state.
	order := newOrderCheck("OPPORTUNITY")
	if err := readStream(ctx, c.js, eventbus.StreamChanges, eventbus.ChangesPrefix+".deal.>", func(m jetstream.Msg) {
		dc := &eventsv1.DomainChange{}
		if proto.Unmarshal(m.Data(), dc) != nil {
			return
		}
		res.changes++
		order.add(dc)
	}); err != nil {
		return res, err
	}
	res.outOfOrder, res.orderChecks = order.broken, order.checks
	// The mirror holds every deal's last state.
	db, err := pgxConnect(ctx, c.dbURL)
	if err != nil {
		return res, err
	}
	defer db.Close(context.Background())
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.deals
		WHERE (fields->>'OPPORTUNITY')::numeric <> (CASE WHEN deal_id <= $2::bigint THEN $3::bigint ELSE $1::bigint END) * 1000000 + deal_id`,
		cfg.updates, cfg.orderDeals, last).Scan(&res.stale); err != nil {
		return res, err
	}
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deal_sync.deals`).Scan(&rows); err != nil {
		return res, err
	}
	res.stale += cfg.portals*cfg.dealsPerPortal - rows
	return res, nil
}

// orderCheck follows every entity's published changes of one field, in
// stream order, and counts the changes that break the entity's order: a
// value that went down (an older state applied after a newer one, the
// field only ever growing in the load) or a second change from the same
// value (one state applied twice, or two fetches written against one
// snapshot).
type orderCheck struct {
	field  string
	from   map[[2]string]map[string]bool
	checks int // changes that followed an earlier change of their entity
	broken int
}

func newOrderCheck(field string) *orderCheck {
	return &orderCheck{field: field, from: map[[2]string]map[string]bool{}}
}

// add checks dc against the entity's earlier changes.
func (o *orderCheck) add(dc *eventsv1.DomainChange) {
	for _, fc := range dc.Changes {
		if fc.Field != o.field {
			continue
		}
		old, _ := strconv.Unquote(fc.OldJson)
		nv, _ := strconv.Unquote(fc.NewJson)
		ov, _ := strconv.ParseFloat(old, 64)
		n, _ := strconv.ParseFloat(nv, 64)
		k := [2]string{dc.MemberId, dc.EntityId}
		seen := o.from[k]
		if seen == nil {
			seen = map[string]bool{}
			o.from[k] = seen
		} else {
			o.checks++
		}
		if n < ov || seen[old] {
			o.broken++
		}
		seen[old] = true
	}
}

// readStream calls f for every message of stream on subject, in order.
func readStream(ctx context.Context, js jetstream.JetStream, stream, subject string, f func(jetstream.Msg)) error {
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return err
	}
	for {
		info, err := cons.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumPending == 0 {
			return nil
		}
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			f(m)
		}
		if err := batch.Error(); err != nil {
			return err
		}
	}
}

func pgxConnect(ctx context.Context, url string) (*pgx.Conn, error) { return pgx.Connect(ctx, url) }
