package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTick is the unit of utime and stime in /proc/<pid>/stat: USER_HZ,
// 100 on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// pidCPU is a process's user+system CPU time so far, from
// /proc/<pid>/stat (fields 14 and 15).
func pidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; the fields after it
	// start after its closing parenthesis, at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuTime is a service process's CPU time so far.
func (p *proc) cpuTime() (time.Duration, error) { return pidCPU(p.cmd.Process.Pid) }

// The rows of the CPU table that are not service processes.
const (
	// cpuBench is this process: the embedded nats-server, the fake
	// portals, the load generator and the harness's own queries.
	cpuBench = "bench process (broker, portals, load)"
	// cpuPostgres is the backends connected to the run's database.
	cpuPostgres = "postgres backends (the run's database)"
	// cpuPostgresShared is PostgreSQL's own processes (WAL writer,
	// checkpointer, background writer, autovacuum launcher …), which
	// serve every database on the server, other tenants' too.
	cpuPostgresShared = "postgres background (shared)"
)

// cpuSample is every service process's CPU time at one moment, and this
// process's.
type cpuSample map[string]time.Duration

func (c *cluster) sampleCPU() cpuSample {
	s := cpuSample{}
	for name, p := range c.procs {
		if t, err := p.cpuTime(); err == nil {
			s[name] = t
		}
	}
	if t, err := pidCPU(os.Getpid()); err == nil {
		s[cpuBench] = t
	}
	return s
}

// pgWatch follows the CPU time of the PostgreSQL processes serving a run:
// every backend connected to its database (a backend may end before the
// run does, so they are sampled every tick and the last reading counts)
// and the server's background processes. PostgreSQL must run on this
// host: its processes' /proc/<pid>/stat is read.
type pgWatch struct {
	db   *pgx.Conn
	name string

	mu     sync.Mutex
	first  map[int32]time.Duration // at the first reading (0 for a backend that started after the watch)
	last   map[int32]time.Duration
	shared map[int32]bool
	skips  map[uint32]bool  // the harness's own backends
	owners map[string]int   // service → pid, to tell whose backend a backend is
	client map[int32]string // backend → the service connected to it
	quit   chan struct{}
	done   chan struct{}
}

// watchPostgres starts a pgWatch of the database dbName through db (a
// connection of its own: it is used by the watch's goroutine only).
func watchPostgres(ctx context.Context, db *pgx.Conn, dbName string, owners map[string]int) (*pgWatch, error) {
	w := &pgWatch{db: db, name: dbName, first: map[int32]time.Duration{}, last: map[int32]time.Duration{}, shared: map[int32]bool{},
		skips: map[uint32]bool{}, client: map[int32]string{}, owners: owners, quit: make(chan struct{}), done: make(chan struct{})}
	w.skip(db.PgConn().PID())
	if err := w.sample(ctx, true); err != nil {
		return nil, err
	}
	go func() {
		defer close(w.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-w.quit:
				_ = w.sample(ctx, false)
				return
			case <-t.C:
				_ = w.sample(ctx, false)
			}
		}
	}()
	return w, nil
}

func (w *pgWatch) sample(ctx context.Context, initial bool) error {
	rows, err := w.db.Query(ctx, `SELECT pid, datname IS DISTINCT FROM $1, coalesce(client_port, 0) FROM pg_stat_activity
		WHERE datname = $1 OR backend_type NOT IN ('client backend', 'autovacuum worker', 'parallel worker', 'walsender')`, w.name)
	if err != nil {
		return err
	}
	type row struct {
		pid    int32
		shared bool
		port   int32
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.pid, &r.shared, &r.port); err != nil {
			return err
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range got {
		if w.skips[uint32(r.pid)] {
			continue
		}
		t, err := pidCPU(int(r.pid))
		if err != nil {
			continue // ended in between, or PostgreSQL is not on this host
		}
		if _, ok := w.first[r.pid]; !ok && !r.shared && w.owners != nil {
			w.client[r.pid] = socketOwner(int(r.port), w.owners)
		}
		if _, ok := w.first[r.pid]; !ok {
			if initial || r.shared {
				w.first[r.pid] = t
			} else {
				w.first[r.pid] = 0 // started during the run: all of its time is the run's
			}
			w.shared[r.pid] = r.shared
		}
		w.last[r.pid] = t
	}
	return nil
}

// skip leaves the backend pid (one of the harness's connections) out.
func (w *pgWatch) skip(pid uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.skips[pid] = true
	delete(w.first, int32(pid))
	delete(w.last, int32(pid))
}

// stop ends the watch and returns the CPU time of the run's backends and of
// the shared background processes since it started, and the backends'
// time by the service connected to them ("?" when not found).
func (w *pgWatch) stop() (backends, shared time.Duration, by map[string]time.Duration) {
	close(w.quit)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	by = map[string]time.Duration{}
	for pid, t := range w.last {
		if w.shared[pid] {
			shared += t - w.first[pid]
		} else {
			backends += t - w.first[pid]
			name := w.client[pid]
			if name == "" {
				name = "?"
			}
			by[name] += t - w.first[pid]
		}
	}
	return backends, shared, by
}

// socketOwner names the process among owners (name → pid) holding the
// loopback TCP socket whose local port is port (a PostgreSQL client's end),
// from /proc/net/tcp{,6} and the processes' /proc/<pid>/fd; "" if none.
func socketOwner(port int, owners map[string]int) string {
	inode := ""
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
				inode = fs[9]
				break
			}
		}
		if inode != "" {
			break
		}
	}
	if inode == "" {
		return ""
	}
	want := "socket:[" + inode + "]"
	for name, pid := range owners {
		dir := fmt.Sprintf("/proc/%d/fd", pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && l == want {
				return name
			}
		}
	}
	return ""
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

// printCPU writes the per-event CPU table of one run: every service
// process, the bench process (broker, fake portals, load generator),
// PostgreSQL, and the total, each also as the cores it would take at rate
// events/s.
func printCPU(out io.Writer, per map[string]time.Duration, events, rate int) {
	fmt.Fprintf(out, "\nCPU time per event per process (user+system from /proc/<pid>/stat, from the start of the load to the ledger catching up, ÷ %d events offered)\n\n", events)
	fmt.Fprintf(out, "| process | CPU per event | cores at %d events/s |\n|---|---|---|\n", rate)
	var names []string
	for n := range per {
		if n != cpuBench && n != cpuPostgres && n != cpuPostgresShared {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var total time.Duration
	for _, n := range append(names, cpuBench, cpuPostgres, cpuPostgresShared) {
		d, ok := per[n]
		if !ok {
			continue
		}
		total += d
		fmt.Fprintf(out, "| %s | %s | %.2f |\n", n, us(d), cores(d, rate))
	}
	fmt.Fprintf(out, "| **total** | **%s** | **%.2f** |\n", us(total), cores(total, rate))
	fmt.Fprintf(out, "\nat this CPU per event, 1,000 events/s need %.2f cores of the whole stack (this machine: %d)\n", cores(total, 1000), runtime.NumCPU())
}

// cores is how many CPUs d of CPU time per event keeps busy at rate
// events/s.
func cores(d time.Duration, rate int) float64 { return d.Seconds() * float64(rate) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

// profileSelf writes a CPU profile of this process to file until the
// returned stop is called. Its samples carry the label "part": broker
// (the embedded nats-server), portals (the fake portals' servers), load
// (the generator and its HTTP client); unlabelled is the harness itself
// (`go tool pprof -tags`).
func profileSelf(file string) (stop func(), err error) {
	f, err := os.Create(file)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}
