package main

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime is a process's user+system CPU time so far, from
// /proc/<pid>/stat (fields 14 and 15).
func (p *proc) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis, at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", p.cmd.Process.Pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", p.cmd.Process.Pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", p.cmd.Process.Pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuSample is every service process's CPU time at one moment.
type cpuSample map[string]time.Duration

func (c *cluster) sampleCPU() cpuSample {
	s := cpuSample{}
	for name, p := range c.procs {
		if t, err := p.cpuTime(); err == nil {
			s[name] = t
		}
	}
	return s
}

// cpuPerEvent is each process's CPU time between two samples divided by
// the events offered in between.
func cpuPerEvent(before, after cpuSample, events int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, t := range after {
		if events > 0 {
			out[name] = (t - before[name]) / time.Duration(events)
		}
	}
	return out
}

// printCPU writes the per-event CPU table of one run.
func printCPU(out io.Writer, per map[string]time.Duration, events int) {
	fmt.Fprintf(out, "\nCPU time per event per service process (user+system from /proc/<pid>/stat, from the start of the load to the ledger catching up, ÷ %d events offered)\n\n", events)
	fmt.Fprintf(out, "| service | CPU per event |\n|---|---|\n")
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(out, "| %s | %s |\n", n, us(per[n]))
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }
