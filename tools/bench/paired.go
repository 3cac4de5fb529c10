package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// pairedMain runs the e2e load alternately with the workspace's deal-sync
// and with one built from another checkout (-base, e.g. a `git worktree`
// of an older commit), every other service the workspace's, and compares
// deal-sync's CPU time per event. On a shared machine only a paired run
// says anything: the rounds alternate (A B, B A, …) so both sides see the
// same neighbours on average.
func pairedMain(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("paired", flag.ContinueOnError)
	base := fs.String("base", "", "checkout (git worktree) of the commit to compare with; its deal-sync is built from there")
	rounds := fs.Int("rounds", 4, "rounds; each runs both sides once")
	var cfg e2eConfig
	fs.IntVar(&cfg.rate, "rate", 300, "events offered per second (both sides must keep up, or the drain dominates)")
	fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "measured load per side and round")
	fs.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "load before the measurement")
	fs.IntVar(&cfg.portals, "portals", 20, "fake portals")
	fs.IntVar(&cfg.dealsPerPortal, "deals", 1000, "deals per portal")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *base == "" || *rounds < 1 {
		return fmt.Errorf("paired: -base DIR is required, -rounds ≥ 1")
	}
	dir, err := os.MkdirTemp("", "b24hub-bench-paired-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bins, err := workspaceBins(ctx, out)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "building %s's deal-sync into %s\n", *base, dir)
	baseDir := filepath.Join(dir, "base")
	if err := os.Mkdir(baseDir, 0o755); err != nil {
		return err
	}
	if err := buildServices(ctx, *base, baseDir, []string{"deal-sync"}); err != nil {
		return err
	}
	cfg.bins, cfg.brief = bins, true
	sides := []struct {
		name string
		bin  string
	}{{"workspace", ""}, {"base", filepath.Join(baseDir, "deal-sync")}}
	got := map[string][]e2eResult{}
	for r := range *rounds {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for _, i := range order {
			fmt.Fprintf(out, "\n== round %d: %s deal-sync ==\n", r+1, sides[i].name)
			c := cfg
			c.dealSync = sides[i].bin
			res, err := benchE2E(ctx, out, c)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, sides[i].name, err)
			}
			got[sides[i].name] = append(got[sides[i].name], res)
		}
	}
	fmt.Fprintf(out, "\npaired: %d rounds of %d events/s for %s (+%s warm-up) over %d portals; base %s\n\n", *rounds, cfg.rate, cfg.duration, cfg.warmup, cfg.portals, *base)
	fmt.Fprintf(out, "| deal-sync | CPU per event, deal-sync (rounds) | median | monitor | ingress | postgres backends (rounds) | whole stack (rounds) | accepted→done p50 / p99 (median) |\n|---|---|---|---|---|---|---|---|\n")
	med := map[string]time.Duration{}
	for _, s := range sides {
		var ds, mon, ing, pg, all []time.Duration
		var p50, p99 []float64
		for _, res := range got[s.name] {
			ds, mon, ing = append(ds, res.cpu["deal-sync"]), append(mon, res.cpu["monitor"]), append(ing, res.cpu["ingress"])
			pg = append(pg, res.cpu[cpuPostgres])
			var sum time.Duration
			for _, d := range res.cpu {
				sum += d
			}
			all = append(all, sum)
			p50, p99 = append(p50, res.p50), append(p99, res.p99)
		}
		med[s.name] = median(ds)
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s / %s |\n", s.name, usList(ds), us(median(ds)), us(median(mon)), us(median(ing)),
			usList(pg), usList(all), secs(medianF(p50)), secs(medianF(p99)))
	}
	if med["base"] > 0 {
		fmt.Fprintf(out, "\ndeal-sync CPU per event, workspace ÷ base: %.2f\n", float64(med["workspace"])/float64(med["base"]))
	}
	return nil
}

func usList(ds []time.Duration) string {
	list := ""
	for i, d := range ds {
		if i > 0 {
			list += ", "
		}
		list += us(d)
	}
	return list
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	s := slices.Clone(f)
	slices.Sort(s)
	return s[len(s)/2]
}
