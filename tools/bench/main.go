// Command bench runs b24hub's benchmarks and prints the figures recorded in
// docs/benchmarks.md. Everything runs on loopback inside this process, so
// the numbers compare designs on one machine; they are not SLOs.
//
//	go run ./tools/bench ingress [-duration 10s] [-conns 1,16,64] [-paths baseline,ingress,sync,async,nohist] [-rounds 1] [-steady=true] [-cpuprofile f]
//	go run ./tools/bench e2e [-rate 1000] [-duration 30s] [-portals 20] [-env K=V,...] [-dealsync-bin f] [-bins DIR] [-cpuprofile DIR]
//	go run ./tools/bench paired -base DIR [-rounds 4] [-rate 300] [-duration 20s]
//	go run ./tools/bench scaleout [-replicas 1,3] [-portals 40] [-deals 100] [-updates 2] [-latency 250ms]
//	go run ./tools/bench dest [-rate 200] [-duration 20s] [-burst 5000] [-conns 64] [-concurrency 64] [-http2]
//	go run ./tools/bench soak [-rate 200] [-duration 30m] [-fault-every 3m] [-sample-every 1m]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: bench ingress|e2e|dest|paired|scaleout|soak [flags]")
	}
	fmt.Fprintf(out, "machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	switch args[0] {
	case "ingress":
		fs := flag.NewFlagSet("ingress", flag.ContinueOnError)
		d := fs.Duration("duration", 10e9, "how long each load step runs")
		prof := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
		memprof := fs.String("memprofile", "", "write a profile of the run's allocations to this file")
		paths := fs.String("paths", "baseline,ingress,sync,async,nohist", "servers measured at each closed-loop step, comma-separated, compared with the first: "+strings.Join(ingressPaths, ", ")+"; one alone, e.g. to profile it")
		target := fs.String("target", "", "one path alone (the same as -paths with one name)")
		rounds := fs.Int("rounds", 1, "repeat the closed-loop steps, alternating the order of the paths")
		steady := fs.Bool("steady", true, "also run the steady 2,000 req/s step (baseline and ingress)")
		conns := fs.String("conns", "1,16,64", "connections of each closed-loop step, comma-separated")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cfg := ingressConfig{duration: *d, rounds: *rounds, steady: *steady}
		if *target != "" {
			*paths = *target
		}
		for _, p := range strings.Split(*paths, ",") {
			if p = strings.TrimSpace(p); !slices.Contains(ingressPaths, p) || slices.Contains(cfg.paths, p) {
				return fmt.Errorf("ingress: -paths %q: want distinct names from %s", *paths, strings.Join(ingressPaths, ", "))
			}
			cfg.paths = append(cfg.paths, p)
		}
		if cfg.rounds < 1 {
			return fmt.Errorf("ingress: -rounds must be at least 1")
		}
		for _, c := range strings.Split(*conns, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(c))
			if err != nil || n < 1 || n > 4096 {
				return fmt.Errorf("ingress: -conns %q: want comma-separated counts from 1 to 4096", *conns)
			}
			cfg.conns = append(cfg.conns, n)
		}
		if cfg.duration <= 0 {
			return fmt.Errorf("ingress: -duration must be positive")
		}
		if *prof != "" {
			f, err := os.Create(*prof)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		if *memprof != "" {
			defer func() {
				if f, err := os.Create(*memprof); err == nil {
					_ = pprof.Lookup("allocs").WriteTo(f, 0)
					f.Close()
				}
			}()
		}
		return benchIngress(ctx, out, cfg)
	case "e2e":
		fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
		var cfg e2eConfig
		fs.IntVar(&cfg.rate, "rate", 1000, "events offered per second")
		fs.DurationVar(&cfg.duration, "duration", 30*time.Second, "measured load")
		fs.DurationVar(&cfg.warmup, "warmup", 5*time.Second, "load before the measurement")
		fs.IntVar(&cfg.portals, "portals", 20, "fake portals the events are spread over")
		fs.IntVar(&cfg.dealsPerPortal, "deals", 1000, "deals per portal")
		env := fs.String("env", "", "extra service environment, KEY=VALUE[,KEY=VALUE...] (e.g. B24HUB_DEALSYNC_CONCURRENCY=16)")
		fs.StringVar(&cfg.dealSync, "dealsync-bin", "", "run this deal-sync binary instead of building the workspace's")
		fs.StringVar(&cfg.bins, "bins", "", "directory of prebuilt service binaries (go build -o DIR/<service> ./services/<service>/cmd/<service>) instead of building them")
		prof := fs.String("cpuprofile", "", "directory: every service writes a CPU profile of its run there (<service>.prof, B24HUB_CPU_PROFILE)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		for _, kv := range strings.Split(*env, ",") {
			if kv = strings.TrimSpace(kv); kv != "" {
				if !strings.Contains(kv, "=") {
					return fmt.Errorf("e2e: -env %q: want KEY=VALUE", kv)
				}
				cfg.env = append(cfg.env, kv)
			}
		}
		if cfg.rate <= 0 || cfg.portals <= 0 || cfg.dealsPerPortal <= 0 || cfg.duration <= 0 {
			return fmt.Errorf("e2e: rate, portals, deals and duration must be positive")
		}
		cfg.profiles = *prof
		_, err := benchE2E(ctx, out, cfg)
		return err
	case "dest":
		fs := flag.NewFlagSet("dest", flag.ContinueOnError)
		var cfg destConfig
		fs.IntVar(&cfg.rate, "rate", 200, "events offered per second in the latency phase")
		fs.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long the latency phase offers them")
		fs.IntVar(&cfg.burst, "burst", 5000, "events of the throughput phase, pushed as fast as the ingress accepts")
		fs.IntVar(&cfg.conns, "conns", 64, "connections pushing the burst")
		fs.IntVar(&cfg.concurrency, "concurrency", 64, "the destination's requests in flight (destinations file, 1..256)")
		fs.IntVar(&cfg.portals, "portals", 20, "fake portals the events are spread over")
		fs.IntVar(&cfg.dealsPerPortal, "deals", 1000, "deals per portal")
		fs.BoolVar(&cfg.http2, "http2", false, "the receiver offers HTTP/2 too (default: HTTP/1.1, like most PHP and Python endpoints)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if cfg.rate <= 0 || cfg.duration <= 0 || cfg.burst <= 0 || cfg.conns <= 0 || cfg.portals <= 0 || cfg.dealsPerPortal <= 0 ||
			cfg.concurrency < 1 || cfg.concurrency > 256 {
			return fmt.Errorf("dest: rate, duration, burst, conns, portals and deals must be positive, concurrency 1..256")
		}
		return benchDest(ctx, out, cfg)
	case "scaleout":
		return scaleoutMain(ctx, out, args[1:])
	case "paired":
		return pairedMain(ctx, out, args[1:])
	case "soak":
		fs := flag.NewFlagSet("soak", flag.ContinueOnError)
		var cfg soakConfig
		fs.IntVar(&cfg.rate, "rate", 200, "events offered per second")
		fs.DurationVar(&cfg.duration, "duration", 30*time.Minute, "how long the load runs")
		fs.DurationVar(&cfg.faultEvery, "fault-every", 3*time.Minute, "one fault per interval: "+strings.Join(soakFaults, ", ")+", in turn")
		fs.DurationVar(&cfg.sampleEvery, "sample-every", time.Minute, "how often each process's resident memory and goroutines are sampled")
		fs.IntVar(&cfg.portals, "portals", 20, "fake portals the events are spread over")
		fs.IntVar(&cfg.dealsPerPortal, "deals", 1000, "deals per portal")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if cfg.rate <= 0 || cfg.duration <= 0 || cfg.faultEvery <= 0 || cfg.sampleEvery <= 0 || cfg.portals <= 0 || cfg.dealsPerPortal <= 0 {
			return fmt.Errorf("soak: rate, duration, fault-every, sample-every, portals and deals must be positive")
		}
		return benchSoak(ctx, out, cfg)
	default:
		return fmt.Errorf("unknown benchmark %q (want: ingress, e2e, dest, paired, scaleout, soak)", args[0])
	}
}
