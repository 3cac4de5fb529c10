// Package svcdecl is the one declaration of a b24hub service: its name, the
// durable consumers it reads (public names), the subjects it publishes and
// subscribes to, the key-value buckets it uses, whether it owns a PostgreSQL
// schema (and its migrations), whether it calls portals, its ports and its
// scaling hints.
//
// Everything else about a service derives from its Service value: its
// command (libs/svcmain), its Kubernetes base, image and migrate Job, its
// NATS permissions, its registration in the local stack, the monitoring job
// lists and the docs' service table. Those derived files are generated or
// checked against the declarations in `go tool task test`, so a declaration
// and what runs can never disagree.
//
// The package is plain data with no dependencies, so tools that render
// manifests or permissions import it without linking a service's runtime.
package svcdecl

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
)

// Role says what kind of service this is; it picks the Kubernetes shape
// (Service exposure, autoscaling, disruption budget) and the docs' grouping.
type Role string

const (
	// RoleEdge takes HTTP from outside the cluster (the ingress).
	RoleEdge Role = "edge"
	// RoleConsumer is a durable JetStream consumer that scales out with an
	// autoscaler (deal-sync, telephony, tasks, and what business teams add).
	RoleConsumer Role = "consumer"
	// RoleControl runs control-plane work under a lease, one active replica
	// at a time (subscriptions).
	RoleControl Role = "control"
	// RoleObserver reads every outcome and serves operators (the monitor).
	RoleObserver Role = "observer"
)

// Service declares one service. Name, Summary and Role are required; every
// other field is optional and says what its zero value means.
type Service struct {
	// Name is the service's name: its command, image, Deployment, NATS user,
	// logger and metrics job. Required; a DNS label (lower-case letters,
	// digits and '-', starting with a letter, at most 40 characters).
	Name string
	// Summary is one sentence saying what the service does, for the docs'
	// service table. Required.
	Summary string
	// Role is the service's kind. Required.
	Role Role
	// Consumers are the durable JetStream consumers the service reads. Their
	// names are public API: renaming one reprocesses its whole stream.
	Consumers []Consumer
	// Publishes are the subjects (NATS wildcards allowed) the service
	// publishes to, besides the JetStream API and replies to requests it
	// serves. Its NATS user may publish nothing else.
	Publishes []string
	// Subscribes are the core NATS subjects (wildcards allowed) the service
	// subscribes to directly: request/reply services such as the install
	// verification. Durable consumers and buckets are declared in their own
	// fields and need no entry here.
	Subscribes []string
	// RuntimeConsumerStreams are streams on which the service creates
	// durable consumers named at run time from its configuration (the
	// destinations service: one "dest-<name>" per declared destination).
	// Its NATS user may create, read, pull from and acknowledge any durable
	// of these streams. Optional; prefer Consumers.
	RuntimeConsumerStreams []string
	// Buckets are the JetStream key-value buckets the service uses.
	Buckets []Bucket
	// Checks are the streams the service looks up without reading them
	// (its readiness probe checks that they exist). Optional; the streams
	// of its Consumers need no entry.
	Checks []string
	// Inspects are the streams whose state the service reads without
	// consuming them (the monitor's age gauges): look the stream up, list
	// its consumers and get stored messages by sequence or subject.
	// Optional.
	Inspects []string
	// Scans are the streams the service reads through ordered consumers
	// (the monitor's audit): consumers with generated names, so its NATS
	// user may create, pull from and delete any consumer of these streams,
	// durables included. Optional; prefer Consumers or Inspects.
	Scans []string
	// Database is the PostgreSQL schema the service owns; nil means the
	// service uses no database.
	Database *Database
	// PortalClient says the service calls portals' REST API: it needs the
	// portals file, the credentials key and the application's secrets, and
	// egress to the portals.
	PortalClient bool
	// Ports are the service's listening ports besides the admin port (9090:
	// /healthz, /readyz, /metrics), which every service has.
	Ports []Port
	// Scaling holds the replica hints; the zero value means 2 to 6 replicas
	// for consumers and edges, one active replica (Singleton) for control.
	Scaling Scaling
	// MemoryLimit is the container memory limit as a Kubernetes quantity in
	// Mi (e.g. "256Mi"); GOMEMLIMIT is set to 90% of it. Optional, default
	// "256Mi".
	MemoryLimit string
	// Env are the service's own settings that its Deployment sets, besides
	// those derived from the fields above (addresses, database, portals,
	// GOMEMLIMIT). Optional; most consumers need none.
	Env []Env
	// SecretFiles are Secrets the service reads as files (a token, a key).
	// Optional; PortalClient already brings the portals file, the
	// credentials key and the application's secrets.
	SecretFiles []SecretFile
}

// Env is one environment variable of a service's container.
type Env struct {
	// Name is the variable. Required; a B24HUB_ name.
	Name string
	// Value is its literal value in the base manifests (overlays may patch
	// it). Exactly one of Value and FieldPath is required.
	Value string
	// FieldPath takes the value from the pod (the downward API), e.g.
	// "metadata.name".
	FieldPath string
	// Comment says why the setting is there; it becomes a comment above the
	// variable in the manifest. Optional.
	Comment string
}

// SecretFile is a Secret mounted read-only as a directory (so updates reach
// the file without a restart) and one of its keys handed to the service as
// a file path.
type SecretFile struct {
	// Env is the variable holding the file's path. Required; a B24HUB_ name
	// ending in _FILE.
	Env string
	// Secret is the Secret's name. Required; a DNS label starting with
	// "b24hub-". It is mounted at /etc/b24hub/<name without "b24hub-">.
	Secret string
	// Key is the Secret's key: the file name. Required.
	Key string
	// Comment says what the file holds. Optional.
	Comment string
}

// Consumer is one durable JetStream consumer a service reads.
type Consumer struct {
	// Durable is the durable consumer name. Required; a subject token
	// (letters, digits, '-', '_'). Public API.
	Durable string
	// Stream is the stream it reads. Required.
	Stream string
	// FilterSubjects select the messages. Required, at least one.
	FilterSubjects []string
}

// Access says what a service may do with a bucket.
type Access string

const (
	// Read is get, list keys and watch.
	Read Access = "read"
	// ReadWrite is Read plus put, create, update and delete.
	ReadWrite Access = "read-write"
)

// Bucket is a key-value bucket a service uses.
type Bucket struct {
	// Name is the bucket name. Required.
	Name string
	// Access is what the service does with it. Required.
	Access Access
}

// Database is the PostgreSQL schema a service owns and migrates.
type Database struct {
	// Schema is the schema name. Required; lower-case letters, digits and
	// '_', starting with a letter.
	Schema string
	// Migrations holds the schema's migrations as NNN_name.sql files at its
	// root (libs/postgres.Migrate). Required.
	Migrations fs.FS
}

// Exposure says who may reach a port.
type Exposure string

const (
	// Public ports are reached from outside the cluster (through the
	// Gateway or Ingress).
	Public Exposure = "public"
	// Cluster ports are reached from inside the cluster only (operators'
	// port-forward, b24ctl).
	Cluster Exposure = "cluster"
)

// Port is a listening port of a service.
type Port struct {
	// Name is the port's name (a DNS label of at most 15 characters, e.g.
	// "http"). Required; "admin" is reserved.
	Name string
	// Port is the container port. Required; 1024–65535, not 9090.
	Port int
	// Exposure is who may reach it. Required.
	Exposure Exposure
	// Env is the environment variable holding the listen address, set to
	// ":<Port>" in the container. Required.
	Env string
}

// Scaling holds replica hints for the Deployment and its autoscaler.
type Scaling struct {
	// Singleton means one replica does the work at a time (it holds a
	// lease); the Deployment still runs MinReplicas for fast takeover and
	// has no autoscaler.
	Singleton bool
	// MinReplicas is the least number of replicas. Optional, default 2.
	MinReplicas int
	// MaxReplicas is the autoscaler's ceiling. Optional, default 6; ignored
	// for a Singleton. Equal to MinReplicas it means a fixed replica count
	// without an autoscaler (the monitor's interchangeable API replicas).
	MaxReplicas int
	// TargetCPU is the autoscaler's CPU utilisation target in percent.
	// Optional, default 70; ignored for a Singleton.
	TargetCPU int
}

// AdminPort is the port every service serves /healthz, /readyz and /metrics on.
const AdminPort = 9090

// DefaultMemoryLimit is MemoryLimit's default.
const DefaultMemoryLimit = "256Mi"

// WithDefaults returns s with every optional field that is zero set to its
// default.
func (s Service) WithDefaults() Service {
	if s.MemoryLimit == "" {
		s.MemoryLimit = DefaultMemoryLimit
	}
	if s.Role == RoleControl {
		s.Scaling.Singleton = true
	}
	if s.Scaling.MinReplicas == 0 {
		s.Scaling.MinReplicas = 2
	}
	if s.Scaling.MaxReplicas == 0 {
		s.Scaling.MaxReplicas = 6
	}
	if s.Scaling.TargetCPU == 0 {
		s.Scaling.TargetCPU = 70
	}
	return s
}

var (
	dnsLabel    = regexp.MustCompile(`^[a-z]([a-z0-9-]*[a-z0-9])?$`)
	schemaName  = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	token       = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	subject     = regexp.MustCompile(`^[^\s.*>]+(\.([^\s.*>]+|\*))*(\.>)?$|^>$`)
	memoryLimit = regexp.MustCompile(`^[1-9][0-9]*Mi$`)
	envName     = regexp.MustCompile(`^B24HUB_[A-Z0-9_]+$`)
)

// Validate reports every field that cannot work, each error naming the
// service and the field.
func (s Service) Validate() error {
	var errs []error
	bad := func(format string, a ...any) {
		errs = append(errs, fmt.Errorf("service %q: "+format, append([]any{s.Name}, a...)...))
	}
	if !dnsLabel.MatchString(s.Name) || len(s.Name) > 40 {
		bad("name must be a DNS label of at most 40 characters")
	}
	if strings.TrimSpace(s.Summary) == "" {
		bad("summary is required")
	}
	switch s.Role {
	case RoleEdge, RoleConsumer, RoleControl, RoleObserver:
	default:
		bad("role %q is not one of edge, consumer, control, observer", s.Role)
	}
	seen := map[string]bool{}
	for i, c := range s.Consumers {
		switch {
		case !token.MatchString(c.Durable):
			bad("consumers[%d]: durable %q must be letters, digits, '-' or '_'", i, c.Durable)
		case seen[c.Durable]:
			bad("consumers[%d]: durable %q declared twice", i, c.Durable)
		}
		seen[c.Durable] = true
		if c.Stream == "" {
			bad("consumers[%d] (%s): stream is required", i, c.Durable)
		}
		if len(c.FilterSubjects) == 0 {
			bad("consumers[%d] (%s): at least one filter subject is required", i, c.Durable)
		}
		for _, f := range c.FilterSubjects {
			if !subject.MatchString(f) {
				bad("consumers[%d] (%s): filter %q is not a NATS subject", i, c.Durable, f)
			}
		}
	}
	for _, list := range []struct {
		field string
		subs  []string
	}{{"publishes", s.Publishes}, {"subscribes", s.Subscribes}} {
		for _, p := range list.subs {
			if !subject.MatchString(p) {
				bad("%s: %q is not a NATS subject", list.field, p)
			}
		}
	}
	for _, list := range []struct {
		field   string
		streams []string
	}{{"runtime consumer streams", s.RuntimeConsumerStreams}, {"checks", s.Checks}, {"inspects", s.Inspects}, {"scans", s.Scans}} {
		for i, st := range list.streams {
			if !token.MatchString(st) {
				bad("%s[%d]: %q is not a stream name", list.field, i, st)
			}
		}
	}
	for i, b := range s.Buckets {
		if !token.MatchString(b.Name) {
			bad("buckets[%d]: name %q must be letters, digits, '-' or '_'", i, b.Name)
		}
		if b.Access != Read && b.Access != ReadWrite {
			bad("buckets[%d] (%s): access %q is not read or read-write", i, b.Name, b.Access)
		}
	}
	if d := s.Database; d != nil {
		if !schemaName.MatchString(d.Schema) {
			bad("database: schema %q must be lower-case letters, digits and '_'", d.Schema)
		}
		if d.Migrations == nil {
			bad("database: migrations are required")
		} else if names, err := fs.Glob(d.Migrations, "*.sql"); err != nil || len(names) == 0 {
			bad("database: migrations hold no *.sql file at their root")
		}
	}
	ports := map[string]bool{"admin": true}
	nums := map[int]bool{AdminPort: true}
	for i, p := range s.Ports {
		switch {
		case !dnsLabel.MatchString(p.Name) || len(p.Name) > 15:
			bad("ports[%d]: name %q must be a DNS label of at most 15 characters", i, p.Name)
		case ports[p.Name]:
			bad("ports[%d]: name %q is taken", i, p.Name)
		}
		ports[p.Name] = true
		switch {
		case p.Port < 1024 || p.Port > 65535:
			bad("ports[%d] (%s): port %d out of range 1024..65535", i, p.Name, p.Port)
		case nums[p.Port]:
			bad("ports[%d] (%s): port %d is taken", i, p.Name, p.Port)
		}
		nums[p.Port] = true
		if p.Exposure != Public && p.Exposure != Cluster {
			bad("ports[%d] (%s): exposure %q is not public or cluster", i, p.Name, p.Exposure)
		}
		if !strings.HasPrefix(p.Env, "B24HUB_") {
			bad("ports[%d] (%s): env %q must be a B24HUB_ variable", i, p.Name, p.Env)
		}
	}
	for i, e := range s.Env {
		if !envName.MatchString(e.Name) {
			bad("env[%d]: %q must be a B24HUB_ variable (upper case, digits, '_')", i, e.Name)
		}
		if (e.Value == "") == (e.FieldPath == "") {
			bad("env[%d] (%s): set exactly one of value and field path", i, e.Name)
		}
	}
	for i, f := range s.SecretFiles {
		if !envName.MatchString(f.Env) || !strings.HasSuffix(f.Env, "_FILE") {
			bad("secret files[%d]: env %q must be a B24HUB_ variable ending in _FILE", i, f.Env)
		}
		if !strings.HasPrefix(f.Secret, "b24hub-") || !dnsLabel.MatchString(f.Secret) || len(f.Secret) > 63 {
			bad("secret files[%d] (%s): secret %q must be a DNS label starting with b24hub-", i, f.Env, f.Secret)
		}
		if !token.MatchString(strings.ReplaceAll(f.Key, ".", "_")) {
			bad("secret files[%d] (%s): key %q must be letters, digits, '.', '-' or '_'", i, f.Env, f.Key)
		}
	}
	sc := s.WithDefaults().Scaling
	if sc.MinReplicas < 1 || sc.MaxReplicas < sc.MinReplicas {
		bad("scaling: want 1 <= min replicas (%d) <= max replicas (%d)", sc.MinReplicas, sc.MaxReplicas)
	}
	if sc.TargetCPU < 10 || sc.TargetCPU > 100 {
		bad("scaling: target CPU %d%% out of range 10..100", sc.TargetCPU)
	}
	if s.MemoryLimit != "" && !memoryLimit.MatchString(s.MemoryLimit) {
		bad("memory limit %q must be a whole number of Mi, e.g. 256Mi", s.MemoryLimit)
	}
	return errors.Join(errs...)
}

// Catalog is the list of every service of a deployment, in a stable order.
type Catalog []Service

// Validate validates each service and what must be unique across them:
// names, durable consumer names and schemas.
func (c Catalog) Validate() error {
	var errs []error
	names, durables, schemas := map[string]bool{}, map[string]string{}, map[string]string{}
	for _, s := range c {
		if err := s.Validate(); err != nil {
			errs = append(errs, err)
		}
		if names[s.Name] {
			errs = append(errs, fmt.Errorf("service %q declared twice", s.Name))
		}
		names[s.Name] = true
		for _, cs := range s.Consumers {
			key := cs.Stream + "/" + cs.Durable
			if other, ok := durables[key]; ok {
				errs = append(errs, fmt.Errorf("durable %s on stream %s declared by %q and %q", cs.Durable, cs.Stream, other, s.Name))
			}
			durables[key] = s.Name
		}
		if s.Database != nil {
			if other, ok := schemas[s.Database.Schema]; ok {
				errs = append(errs, fmt.Errorf("schema %q owned by %q and %q", s.Database.Schema, other, s.Name))
			}
			schemas[s.Database.Schema] = s.Name
		}
	}
	return errors.Join(errs...)
}

// Lookup returns the service named name.
func (c Catalog) Lookup(name string) (Service, bool) {
	i := slices.IndexFunc(c, func(s Service) bool { return s.Name == name })
	if i < 0 {
		return Service{}, false
	}
	return c[i], true
}

// SubjectMatches reports whether the NATS subject matches pattern, as the
// server matches subscriptions and permissions: '*' stands for one token,
// a final '>' for one or more.
func SubjectMatches(pattern, subject string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, p := range pt {
		switch {
		case p == ">" && i == len(pt)-1:
			return len(st) > i
		case i >= len(st):
			return false
		case p != "*" && p != st[i]:
			return false
		}
	}
	return len(pt) == len(st)
}

// MayPublish reports whether subject falls under one of s.Publishes: what
// its NATS user will be allowed to publish.
func (s Service) MayPublish(subject string) bool {
	return slices.ContainsFunc(s.Publishes, func(p string) bool { return SubjectMatches(p, subject) })
}
