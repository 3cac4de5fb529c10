package natstest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a JetStream cluster of embedded servers on loopback, as the
// production overlay runs NATS (three nodes, streams with three replicas).
// Every route between two nodes passes through a TCP proxy of its own, so a
// test can cut one node off from the others (Isolate) while its clients
// stay connected to it.
type Cluster struct {
	t     testing.TB
	nodes []*Node
	// routes[i][j] carries the route node i solicits to node j.
	routes [][]*Proxy
	// isolated are the nodes Isolate cut off, by name.
	isolated map[string]bool
}

// Node is one server of a Cluster. Its client and route ports and its
// store survive Stop and Restart.
type Node struct {
	*server.Server
	// Name is the server name, n1 … nN; it is what StreamInfo reports as
	// the leader.
	Name string
	opts *server.Options
	t    testing.TB
}

// StartCluster runs an n-node JetStream cluster named "natstest" for the
// life of t and waits until JetStream answers (a meta leader is elected).
// Each node stores in its own temp dir of t; client ports are random.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natstest: cluster of %d nodes", n)
	}
	c := &Cluster{t: t, isolated: map[string]bool{}}
	// Route ports are fixed before any node starts, so every node can be
	// told where the others are; each pair gets a proxy of its own.
	routePorts := make([]int, n)
	for i := range n {
		routePorts[i] = freePort(t)
	}
	c.routes = make([][]*Proxy, n)
	for i := range n {
		c.routes[i] = make([]*Proxy, n)
		for j := range n {
			if i != j {
				c.routes[i][j] = NewProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(routePorts[j])))
			}
		}
	}
	for i := range n {
		var routes []string
		for j := range n {
			if i != j {
				routes = append(routes, "nats-route://"+c.routes[i][j].Addr())
			}
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoSigs:     true,
			NoLog:      true,
			Cluster: server.ClusterOpts{
				Name: "natstest",
				Host: "127.0.0.1",
				Port: routePorts[i],
				// Nodes tell each other this address for routes they
				// did not configure; nothing listens there, so every
				// route goes through the configured proxies and Isolate
				// cuts all of a node's routes.
				Advertise: "127.0.0.1:1",
			},
			Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		}
		c.nodes = append(c.nodes, &Node{Name: opts.ServerName, opts: opts, t: t})
	}
	// Started together: a node waits for its peers before JetStream is up,
	// and a node is ready for clients before that.
	for _, nd := range c.nodes {
		nd.start()
		nd.opts.Port = nd.Addr().(*net.TCPAddr).Port
		t.Cleanup(nd.Stop)
	}
	c.WaitJetStream(t, 2*time.Minute)
	return c
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (nd *Node) start() {
	nd.t.Helper()
	ns, err := server.NewServer(nd.opts)
	if err != nil {
		nd.t.Fatalf("natstest: new server %s: %v", nd.Name, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(time.Minute) {
		nd.t.Fatalf("natstest: server %s not ready", nd.Name)
	}
	nd.Server = ns
}

// Stop shuts the node down hard (like a crashed or evicted pod) and waits
// for it. It is safe to call more than once.
func (nd *Node) Stop() {
	if nd.Server == nil {
		return
	}
	nd.Shutdown()
	nd.WaitForShutdown()
}

// Restart starts a stopped (or running) node again with the same ports and
// store, as a pod that comes back with its volume.
func (nd *Node) Restart() {
	nd.t.Helper()
	nd.Stop()
	nd.start()
}

// Running reports whether the node is up.
func (nd *Node) Running() bool { return nd.Server != nil && nd.Server.Running() }

// Connect returns a client of this node only (it reconnects to it,
// forever); it is closed when t ends.
func (nd *Node) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond), nats.DontRandomize(),
		nats.IgnoreDiscoveredServers()}, opts...)
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port), opts...)
	if err != nil {
		t.Fatalf("natstest: connect %s: %v", nd.Name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Nodes are the cluster's servers, n1 first.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// Node returns the node with the server name (n1 …), or nil.
func (c *Cluster) Node(name string) *Node {
	for _, nd := range c.nodes {
		if nd.Name == name {
			return nd
		}
	}
	return nil
}

// ClientURLs are the nodes' client URLs, stable across Restart.
func (c *Cluster) ClientURLs() []string {
	out := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		out[i] = fmt.Sprintf("nats://127.0.0.1:%d", nd.opts.Port)
	}
	return out
}

// URL is every client URL joined with commas: what nats.Connect and
// B24HUB_NATS_URL take for a cluster.
func (c *Cluster) URL() string { return strings.Join(c.ClientURLs(), ",") }

// Connect returns a client of the whole cluster (it reconnects to any node,
// forever); it is closed when t ends.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.MaxReconnects(-1), nats.ReconnectWait(50 * time.Millisecond)}, opts...)
	nc, err := nats.Connect(c.URL(), opts...)
	if err != nil {
		t.Fatalf("natstest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// JetStream returns a JetStream context on a client of the whole cluster.
func (c *Cluster) JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc := c.Connect(t)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natstest: jetstream: %v", err)
	}
	return nc, js
}

// WaitJetStream waits until JetStream answers an account info request
// through every running node, i.e. the meta group has a leader that every
// running node reaches.
func (c *Cluster) WaitJetStream(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, nd := range c.nodes {
		if !nd.Running() {
			continue
		}
		nc, err := nats.Connect(nd.ClientURL())
		if err != nil {
			t.Fatalf("natstest: connect %s: %v", nd.Name, err)
		}
		js, _ := jetstream.New(nc)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := js.AccountInfo(ctx)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				nc.Close()
				t.Fatalf("natstest: JetStream through %s not up within %s: %v", nd.Name, timeout, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		nc.Close()
	}
}

// StreamLeader returns the running node that leads stream (in the global
// account), or nil while there is none. An isolated node is never the
// leader, even while it still believes it is: the majority elects another.
func (c *Cluster) StreamLeader(stream string) *Node {
	for _, nd := range c.nodes {
		if nd.Running() && !c.isolated[nd.Name] && nd.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream) {
			return nd
		}
	}
	return nil
}

// MoveStreamLeader asks the stream's leader to step down in favour of the
// named node and waits until that node leads; it fails t after timeout.
// Tests use it to choose where the leader is before a fault.
func (c *Cluster) MoveStreamLeader(t testing.TB, stream, to string, timeout time.Duration) {
	t.Helper()
	nc := c.Connect(t)
	defer nc.Close()
	req, _ := json.Marshal(server.JSApiLeaderStepdownRequest{Placement: &server.Placement{Preferred: to}})
	deadline := time.Now().Add(timeout)
	for {
		l := c.StreamLeader(stream)
		if l != nil && l.Name == to {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: %s does not lead %s within %s", to, stream, timeout)
		}
		if l != nil {
			// A request during an election may fail; the loop asks again.
			_, _ = nc.Request(fmt.Sprintf(server.JSApiStreamLeaderStepDownT, stream), req, time.Second)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ConsumerLeader returns the running node that leads the durable consumer,
// or nil while there is none; like StreamLeader it skips isolated nodes.
func (c *Cluster) ConsumerLeader(stream, durable string) *Node {
	for _, nd := range c.nodes {
		if nd.Running() && !c.isolated[nd.Name] && nd.JetStreamIsConsumerLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream, durable) {
			return nd
		}
	}
	return nil
}

// Healthy reports whether every node is running and its /healthz is ok:
// it reaches the meta leader and every stream and consumer replica it holds
// is current. A rolling restart waits for this before the next node, as the
// NATS Helm chart's probes do.
func (c *Cluster) Healthy() error {
	for _, nd := range c.nodes {
		if !nd.Running() {
			return fmt.Errorf("%s is stopped", nd.Name)
		}
		if st := nd.Healthz(&server.HealthzOptions{}); st.Status != "ok" {
			return fmt.Errorf("%s: %s %s", nd.Name, st.Status, st.Error)
		}
	}
	return nil
}

// WaitHealthy waits until Healthy holds; it fails t after timeout.
func (c *Cluster) WaitHealthy(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := c.Healthy()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster not healthy within %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Isolate cuts every route to and from the named node: it keeps running and
// keeps its clients, but reaches no peer, as on the wrong side of a network
// partition. Heal undoes it.
func (c *Cluster) Isolate(name string) {
	c.t.Helper()
	for _, p := range c.routesOf(name) {
		p.Cut()
	}
	c.isolated[name] = true
}

// Heal restores the routes Isolate cut; the nodes reconnect by themselves.
func (c *Cluster) Heal(name string) {
	c.t.Helper()
	for _, p := range c.routesOf(name) {
		p.Restore()
	}
	delete(c.isolated, name)
}

func (c *Cluster) routesOf(name string) []*Proxy {
	c.t.Helper()
	k := -1
	for i, nd := range c.nodes {
		if nd.Name == name {
			k = i
		}
	}
	if k < 0 {
		c.t.Fatalf("natstest: no node %q", name)
	}
	var out []*Proxy
	for i := range c.nodes {
		if i != k {
			out = append(out, c.routes[k][i], c.routes[i][k])
		}
	}
	return out
}

// RaftState describes, node by node, the raft groups behind stream (in the
// global account) and the meta group as each node sees them: state, leader,
// term, vote, last log entry, commit and apply index, catching up or
// observer, and when it last heard from each peer. Cluster tests log it
// when a leader does not come, to tell a node that refuses to vote or to
// campaign from one that is not reached.
func (c *Cluster) RaftState(stream string) string {
	var b strings.Builder
	for _, nd := range c.nodes {
		if !nd.Running() {
			fmt.Fprintf(&b, "%s: stopped\n", nd.Name)
			continue
		}
		iso := ""
		if c.isolated[nd.Name] {
			iso = " (isolated)"
		}
		group := ""
		if jsz, err := nd.Jsz(&server.JSzOptions{Accounts: true, Streams: true, RaftGroups: true}); err == nil {
			fmt.Fprintf(&b, "%s%s: meta leader %q;", nd.Name, iso, jsz.Meta.Leader)
			for _, acc := range jsz.AccountDetails {
				for _, st := range acc.Streams {
					if st.Name == stream {
						group = st.RaftGroup
					}
				}
			}
		} else {
			fmt.Fprintf(&b, "%s%s: jsz: %v;", nd.Name, iso, err)
		}
		for _, acc := range []string{"", server.DEFAULT_GLOBAL_ACCOUNT} {
			rz := nd.Raftz(&server.RaftzOptions{AccountFilter: acc})
			if rz == nil {
				continue
			}
			for _, groups := range *rz {
				for id, g := range groups {
					if id != group && id != "_meta_" {
						continue
					}
					name := stream
					if id == "_meta_" {
						name = "meta"
					}
					peerName := func(id string) string {
						if p, ok := g.Peers[id]; ok && p.Name != "" {
							return p.Name
						}
						return id // this node itself, or none
					}
					fmt.Fprintf(&b, " %s (%s): %s, leader %q, term %d, voted %q, last %d/%d, commit %d, applied %d",
						name, id, g.State, peerName(g.Leader), g.Term, peerName(g.Vote), g.PTerm, g.PIndex, g.Committed, g.Applied)
					if g.CatchingUp {
						b.WriteString(", catching up")
					}
					if g.Observer {
						b.WriteString(", observer")
					}
					if g.Paused {
						b.WriteString(", paused")
					}
					var peers []string
					for _, p := range g.Peers {
						peers = append(peers, fmt.Sprintf("%s seen %s ago (index %d)", p.Name, p.LastSeen, p.LastReplicatedIndex))
					}
					if len(peers) > 0 {
						fmt.Fprintf(&b, ", peers: %s", strings.Join(peers, ", "))
					}
					b.WriteString(";")
				}
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// LaggingReplicas lists, through js, every replica of every stream and
// consumer that is offline or more than maxLag raft entries behind its
// leader ("STREAM@node lag N", "STREAM/durable@node …"), and every group
// without a leader. Healthy (the servers' /healthz) can pass while a
// replica that was cut off is still catching up — the leader has not yet
// told it how far behind it is — so a test that injects a second fault
// waits for this list to be empty first: a second fault while a replica is
// behind leaves the majority without a replica able to lead.
func LaggingReplicas(ctx context.Context, js jetstream.JetStream, maxLag uint64) ([]string, error) {
	var out []string
	check := func(name string, ci *jetstream.ClusterInfo) {
		if ci == nil {
			return
		}
		if ci.Leader == "" {
			out = append(out, name+": no leader")
		}
		for _, r := range ci.Replicas {
			if r.Offline || r.Lag > maxLag {
				out = append(out, fmt.Sprintf("%s@%s lag %d offline %t", name, r.Name, r.Lag, r.Offline))
			}
		}
	}
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		check(info.Config.Name, info.Cluster)
		str, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			return nil, err
		}
		cons := str.ListConsumers(ctx)
		for ci := range cons.Info() {
			check(info.Config.Name+"/"+ci.Name, ci.Cluster)
		}
		if err := cons.Err(); err != nil {
			return nil, err
		}
	}
	return out, streams.Err()
}
