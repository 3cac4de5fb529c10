package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/b24hub/b24hub/libs/eventbus"
	"github.com/b24hub/b24hub/libs/fakeportal"
	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// services are the service binaries a cluster runs, each as its own
// process, as in production.
var services = []string{"ingress", "monitor", "subscriptions", "deal-sync", "telephony", "tasks"}

// cluster is every service binary running against an embedded JetStream
// (in this process), a fresh database on the local PostgreSQL and fake
// portals (in this process) — loopback only.
type cluster struct {
	dir      string
	broker   *server.Server
	natsURL  string
	nc       *nats.Conn
	js       jetstream.JetStream
	adminURL string // PostgreSQL server to create the database on
	dbName   string
	dbURL    string
	portals  []*benchPortal
	procs    map[string]*proc
	ingress  string // http://host:port
	monitor  string
	token    string
	stops    []func()
}

// benchPortal is one fake portal and the identity the ingress knows it by.
type benchPortal struct {
	fake  *fakeportal.Portal
	token string
	deals int
}

// proc is one running service binary.
type proc struct {
	name  string
	cmd   *exec.Cmd
	ready string // readiness URL
	admin string // host:port of the admin server (/metrics)
	log   string
}

// clusterConfig sizes a cluster.
type clusterConfig struct {
	portals, dealsPerPortal int
	// withoutSubscriptions leaves the subscriptions service out (it is not
	// on the path of a pushed event, and its first reconciliation of every
	// portal is a storm of its own).
	withoutSubscriptions bool
	// env is added to every service's environment (KEY=VALUE).
	env []string
	// bins, when set, holds the service binaries already built (see
	// buildServices); otherwise the workspace's are (workspaceBins).
	bins string
	// dealSync, when set, is the deal-sync binary to run instead of the
	// one in bins (e.g. one built from an older commit, for a paired run).
	dealSync string
	// profiles, when set, is a directory every service writes a CPU
	// profile of its run to (<service>.prof).
	profiles string
	// latency is added before every REST answer of the fake portals.
	latency time.Duration
	// destinations adds the destinations service (its file and trust come
	// through env).
	destinations bool
}

// allServices are every service binary a benchmark runs: services and
// the destinations service (bench:dest).
var allServices = append(slices.Clone(services), "destinations")

// buildServices builds the service binaries names of the workspace
// containing dir (the current one when dir is "") into out, in one `go
// build` (the packages they share compile once, the links run in
// parallel). go build relinks only a binary that is not up to date (it
// compares the build ID recorded in the existing file), so building into
// the same directory again costs a few seconds.
func buildServices(ctx context.Context, dir, out string, names []string) error {
	root := dir
	if root == "" {
		var err error
		if root, err = repoRoot(); err != nil {
			return err
		}
	}
	args := []string{"build", "-o", out + string(filepath.Separator)}
	for _, s := range names {
		args = append(args, "./services/"+s+"/cmd/"+s)
	}
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir = root
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", strings.Join(names, " "), root, err, b)
	}
	return nil
}

// workspaceBins builds every service binary of the current workspace into
// a directory kept between runs (under the user's cache directory, one per
// workspace root) and returns it. The benchmarks of one `go tool task
// bench` (e2e, dest, scaleout) and every later run share it: only the
// first build after a change links anything. A change in the tree, commit
// or not, makes go build relink what it touches.
func workspaceBins(ctx context.Context, out io.Writer) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(root))
	dir := filepath.Join(cache, "b24hub-bench", hex.EncodeToString(sum[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	start := time.Now()
	if err := buildServices(ctx, "", dir, allServices); err != nil {
		return "", err
	}
	fmt.Fprintf(out, "service binaries of %s up to date in %s (%s)\n", root, dir, time.Since(start).Round(100*time.Millisecond))
	return dir, nil
}

// startCluster builds the service binaries and starts everything. close
// stops it and removes what it created.
func startCluster(ctx context.Context, out io.Writer, cc clusterConfig) (_ *cluster, err error) {
	c := &cluster{procs: map[string]*proc{}}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.dir, err = os.MkdirTemp("", "b24hub-bench-cluster-*"); err != nil {
		return nil, err
	}
	c.stops = append(c.stops, func() { os.RemoveAll(c.dir) })
	names := services
	if cc.withoutSubscriptions {
		names = []string{"ingress", "monitor", "deal-sync", "telephony", "tasks"}
	}
	if cc.destinations {
		names = append(append([]string(nil), names...), "destinations")
	}
	bins := cc.bins
	if bins == "" {
		if bins, err = workspaceBins(ctx, out); err != nil {
			return nil, err
		}
	}

	// The broker's store is in the cluster's directory, so restartBroker
	// starts it again with everything it held.
	// The broker's goroutines carry part=broker in the bench process's
	// CPU profile (profileSelf), the fake portals' part=portals.
	var ns *server.Server
	pprof.Do(ctx, pprof.Labels("part", "broker"), func(context.Context) { ns, err = startBrokerIn(c.brokerDir(), -1) })
	if err != nil {
		return nil, err
	}
	c.broker = ns
	c.stops = append(c.stops, func() {
		c.broker.Shutdown()
		c.broker.WaitForShutdown()
	})
	c.natsURL = ns.ClientURL()
	if c.nc, err = nats.Connect(c.natsURL); err != nil {
		return nil, err
	}
	c.stops = append(c.stops, c.nc.Close)
	if c.js, err = jetstream.New(c.nc); err != nil {
		return nil, err
	}
	if err := eventbus.Provision(ctx, c.js, eventbus.StreamOptions{}); err != nil {
		return nil, err
	}

	if err := c.createDatabase(ctx); err != nil {
		return nil, err
	}
	pprof.Do(ctx, pprof.Labels("part", "portals"), func(context.Context) { err = c.startPortals(cc) })
	if err != nil {
		return nil, err
	}

	c.token = randomHex(16)
	ingressAddr, monitorAddr := freeAddr(), freeAddr()
	c.ingress, c.monitor = "http://"+ingressAddr, "http://"+monitorAddr
	env := []string{
		"B24HUB_NATS_URL=" + c.natsURL,
		"B24HUB_DATABASE_URL=" + c.dbURL,
		"B24HUB_PORTALS_FILE=" + filepath.Join(c.dir, "portals.yaml"),
		"B24HUB_LOG_LEVEL=warn",
		"B24HUB_CREDENTIALS_KEY=" + base64.StdEncoding.EncodeToString(randomBytes(32)),
		"B24HUB_MONITOR_TOKEN=" + c.token,
		"B24HUB_INGRESS_ADDR=" + ingressAddr,
		"B24HUB_MONITOR_ADDR=" + monitorAddr,
		"B24HUB_HANDLER_URL=" + c.ingress,
		"B24HUB_INSTALL_ALLOWED_HOSTS=127.0.0.1",
		// Reconciliation looks back only 1 s at start: the portals' deals
		// were created before, and the benchmark measures pushes, not a
		// first reconciliation of every deal.
		"B24HUB_RECONCILE_LOOKBACK=1s",
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
	}
	env = append(env, cc.env...)
	if len(cc.env) > 0 {
		fmt.Fprintf(out, "service environment: %s\n", strings.Join(cc.env, " "))
	}
	for _, s := range names {
		admin := freeAddr()
		p := &proc{name: s, ready: "http://" + admin + "/readyz", admin: admin, log: filepath.Join(c.dir, s+".log")}
		switch s {
		case "ingress":
			p.ready = c.ingress + "/readyz"
		case "monitor":
			p.ready = c.monitor + "/readyz"
		}
		logf, err := os.Create(p.log)
		if err != nil {
			return nil, err
		}
		bin := filepath.Join(bins, s)
		if s == "deal-sync" && cc.dealSync != "" {
			bin = cc.dealSync
		}
		p.cmd = exec.Command(bin)
		p.cmd.Env = append(append([]string(nil), env...), "B24HUB_ADMIN_ADDR="+admin)
		if cc.profiles != "" {
			p.cmd.Env = append(p.cmd.Env, "B24HUB_CPU_PROFILE="+filepath.Join(cc.profiles, s+".prof"))
		}
		p.cmd.Stdout, p.cmd.Stderr = logf, logf
		if err := p.cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", s, err)
		}
		c.procs[s] = p
	}
	c.stops = append(c.stops, c.stopProcs)
	deadline := time.Now().Add(90 * time.Second)
	for _, s := range names {
		p := c.procs[s]
		for !ready(p.ready) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s not ready within 90s; log %s:\n%s", s, p.log, tailFile(p.log, 2000))
			}
			if p.cmd.ProcessState != nil {
				return nil, fmt.Errorf("%s exited; log:\n%s", s, tailFile(p.log, 2000))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return c, nil
}

// brokerDir is the embedded broker's store.
func (c *cluster) brokerDir() string { return filepath.Join(c.dir, "jetstream") }

func (c *cluster) close() {
	for i := len(c.stops) - 1; i >= 0; i-- {
		c.stops[i]()
	}
}

// stopProcs sends SIGTERM to every service and waits (bounded) for it.
func (c *cluster) stopProcs() {
	for _, p := range c.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range c.procs {
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = p.cmd.Process.Kill()
		}
	}
}

func (c *cluster) createDatabase(ctx context.Context) error {
	c.adminURL = os.Getenv("B24HUB_TEST_DATABASE_URL")
	if c.adminURL == "" {
		c.adminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := pgx.Connect(ctx, c.adminURL)
	if err != nil {
		return fmt.Errorf("PostgreSQL at %s: %w (set B24HUB_TEST_DATABASE_URL)", c.adminURL, err)
	}
	defer conn.Close(ctx)
	c.dbName = "b24hub_bench_" + randomHex(6)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+c.dbName); err != nil {
		return err
	}
	c.stops = append(c.stops, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, c.adminURL); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+c.dbName+" WITH (FORCE)")
			conn.Close(ctx)
		}
	})
	u, _ := url.Parse(c.adminURL)
	u.Path = "/" + c.dbName
	c.dbURL = u.String()
	return nil
}

// startPortals starts the fake portals with their deals and writes the
// portals file: each portal calls back through an incoming webhook.
func (c *cluster) startPortals(cc clusterConfig) error {
	var yaml strings.Builder
	yaml.WriteString("portals:\n")
	for i := range cc.portals {
		member := fmt.Sprintf("%032x", 0xb24b00+i)
		fake, err := fakeportal.New(fakeportal.Config{MemberID: member, Faults: fakeportal.Faults{Latency: cc.latency}})
		if err != nil {
			return err
		}
		c.stops = append(c.stops, func() { _ = fake.Close() })
		for d := 1; d <= cc.dealsPerPortal; d++ {
			fake.CreateDeal(map[string]string{"TITLE": "Bench deal " + strconv.Itoa(d), "STAGE_ID": "NEW",
				"OPPORTUNITY": strconv.Itoa(1000 + d), "CURRENCY_ID": "EUR"}, false)
		}
		p := &benchPortal{fake: fake, token: randomHex(16), deals: cc.dealsPerPortal}
		c.portals = append(c.portals, p)
		fmt.Fprintf(&yaml, "  - member_id: %s\n    application_token: %s\n    domain: %s\n    webhook_url: %s\n",
			member, p.token, fake.Domain(), fake.AddWebhook(1, randomHex(8)))
	}
	return os.WriteFile(filepath.Join(c.dir, "portals.yaml"), []byte(yaml.String()), 0o600)
}

// body is a ~1 KiB ONCRMDEALUPDATE for portal p about deal, unique by seq.
func (p *benchPortal) body(deal int, seq int64) []byte {
	ts := strconv.FormatInt(1736405807+seq, 10)
	return []byte("event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=" + strconv.Itoa(deal) + "&ts=" + ts +
		"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lvs6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bexpires%5D=1736409407&auth%5Bexpires_in%5D=3600" +
		"&auth%5Bscope%5D=crm%2Ctask%2Ctasks_extended%2Cuser%2Cuser_brief%2Cuser_basic%2Ctelephony%2Ccall%2Cdisk%2Cim%2Cimbot%2Cimopenlines%2Cplacement%2Cbizproc%2Clists%2Centity%2Cdepartment%2Csonet_group%2Clandings%2Ccatalog%2Csale%2Ccalendar%2Cmailservice%2Cpay_system%2Csmile%2Clog%2Cforum%2Cevent_open_lines" +
		"&auth%5Bdomain%5D=" + p.fake.Domain() + "&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bstatus%5D=F" +
		"&auth%5Bclient_endpoint%5D=http%3A%2F%2F" + p.fake.Domain() + "%2Frest%2F&auth%5Bmember_id%5D=" + p.fake.MemberID() +
		"&auth%5Buser_id%5D=1&auth%5Brefresh_token%5D=4s386p3q0tr8dy89xvmt96234v3dljg84s386p3q0tr8dy89xvmt96234v3dljg8" +
		"&auth%5Bapplication_token%5D=" + p.token)
}

// pending is the number of messages some durable consumer of the raw-event
// or outcome stream has not acknowledged yet.
func (c *cluster) pending(ctx context.Context) (int, error) {
	n := 0
	for _, name := range []string{eventbus.StreamEvents, eventbus.StreamOutcomes} {
		str, err := c.js.Stream(ctx, name)
		if err != nil {
			return 0, err
		}
		for ci := range str.ListConsumers(ctx).Info() {
			n += int(ci.NumPending) + ci.NumAckPending
		}
	}
	return n, nil
}

// waitIdle waits until every consumer has caught up (bounded by timeout).
func (c *cluster) waitIdle(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	quiet := 0
	for {
		n, err := c.pending(ctx)
		if err == nil && n == 0 {
			if quiet++; quiet >= 3 {
				return nil
			}
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consumers still have %d messages pending after %s", n, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// memory is a process's resident set, from /proc/<pid>/status.
type memory struct{ rss, hwm int64 } // KiB

func (p *proc) memory() (memory, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return memory{}, err
	}
	defer f.Close()
	var m memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.hwm = n
		}
	}
	if m.rss == 0 {
		return m, errors.New("no VmRSS")
	}
	return m, nil
}

func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return "", err
	}
	w := strings.TrimSpace(string(out))
	if w == "" || w == "off" {
		return "", errors.New("run from inside the b24hub workspace (go.work)")
	}
	return filepath.Dir(w), nil
}

func ready(u string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func freeAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer ln.Close()
	return ln.Addr().String()
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

// post sends portal p's ONCRMDEALUPDATE for deal (push sequence seq) to the
// ingress and returns the answer's status (0 when the request failed) and,
// on acceptance, the event id from its body.
func (c *cluster) post(hc *http.Client, p *benchPortal, deal int, seq int64) (status int, id string) {
	resp, err := hc.Post(c.ingress+"/bitrix24/events", "application/x-www-form-urlencoded", bytes.NewReader(p.body(deal, seq)))
	if err != nil {
		return 0, ""
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	resp.Body.Close()
	if _, after, ok := strings.Cut(string(b), `"id":"`); ok {
		id, _, _ = strings.Cut(after, `"`)
	}
	return resp.StatusCode, id
}
