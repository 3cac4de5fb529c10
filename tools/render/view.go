package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/b24hub/b24hub/libs/svcdecl"
)

// view is a declaration with its defaults applied and everything the
// templates need computed once: the container's environment, mounts and
// volumes, its memory figures and its shape (autoscaled or fixed replicas).
type view struct {
	svcdecl.Service
	// Autoscaled: a HorizontalPodAutoscaler owns the replica count (every
	// service that is not a Singleton and whose replicas may vary); else the
	// Deployment runs a fixed MinReplicas.
	Autoscaled bool
	// Drains: the service drains in-flight work for B24HUB_SHUTDOWN_TIMEOUT
	// on SIGTERM (the edge and the consumers); the grace period covers it.
	Drains bool
	// MemoryRequest is 3/8 of the limit; GOMEMLIMIT is 90% of the limit.
	MemoryRequest, GoMemLimit string
	Env                       []envVar
	Mounts                    []mount
}

// envVar is one rendered env entry.
type envVar struct {
	Comment []string // comment lines above it
	Name    string
	Value   string // literal, already YAML-quoted where needed
	Field   string // downward API field path
	Secret  string // secretKeyRef name
	Key     string // secretKeyRef key
	Note    string // comment inside valueFrom (why this Secret)
}

// mount is one read-only Secret volume (or the /tmp emptyDir).
type mount struct {
	Name, Secret, Path string
}

// NATSSecret is the Secret holding the NATS identity of user (a service,
// or the topology admin): key NATSSecretKey is its nkey seed.
func NATSSecret(user string) string { return "b24hub-nats-" + user }

// NATSSecretKey is the key of a NATSSecret holding the nkey seed.
const NATSSecretKey = "nkey"

// Derived settings and Secrets (docs/deploy.md, "Secrets", explains them).
const (
	portalsSecret     = "b24hub-portals"
	credentialsSecret = "b24hub-credentials"
	appSecret         = "b24hub-app"
	pgSecret          = "b24-pg-app"
	shutdownTimeout   = "20s"
)

func newView(s svcdecl.Service) (*view, error) {
	s = s.WithDefaults()
	v := &view{Service: s, Autoscaled: !s.Scaling.Singleton && s.Scaling.MaxReplicas > s.Scaling.MinReplicas}
	v.Drains = s.Role == svcdecl.RoleEdge || s.Role == svcdecl.RoleConsumer
	limit, err := strconv.Atoi(strings.TrimSuffix(s.MemoryLimit, "Mi"))
	if err != nil {
		return nil, fmt.Errorf("render: service %q: memory limit %q: %v", s.Name, s.MemoryLimit, err)
	}
	v.MemoryRequest = fmt.Sprintf("%dMi", limit*3/8)
	v.GoMemLimit = fmt.Sprintf("%dMiB", limit*9/10)

	add := func(e envVar) { v.Env = append(v.Env, e) }
	mounted := map[string]bool{}
	mountSecret := func(secret string) {
		if !mounted[secret] {
			mounted[secret] = true
			name := strings.TrimPrefix(secret, "b24hub-")
			v.Mounts = append(v.Mounts, mount{Name: name, Secret: secret, Path: secretDir(secret)})
		}
	}

	add(envVar{Name: "OTEL_SERVICE_NAME", Value: yamlString(s.Name)})
	add(envVar{Name: "B24HUB_ADMIN_ADDR", Value: yamlString(fmt.Sprintf(":%d", svcdecl.AdminPort))})
	for _, p := range s.Ports {
		add(envVar{Name: p.Env, Value: yamlString(fmt.Sprintf(":%d", p.Port))})
	}
	if v.Drains {
		add(envVar{Name: "B24HUB_SHUTDOWN_TIMEOUT", Value: shutdownTimeout})
	}
	for _, e := range s.Env {
		ev := envVar{Comment: commentLines(e.Comment), Name: e.Name, Field: e.FieldPath}
		if e.FieldPath == "" {
			ev.Value = yamlString(e.Value)
		}
		add(ev)
	}
	if s.Database != nil {
		add(envVar{Name: "B24HUB_DATABASE_URL", Secret: pgSecret, Key: "uri",
			Note: "Written by CloudNativePG for the Cluster's owner (deploy/postgres)."})
	}
	if s.PortalClient {
		mountSecret(portalsSecret)
		mountSecret(credentialsSecret)
		mountSecret(appSecret)
		add(envVar{Name: "B24HUB_PORTALS_FILE", Value: secretDir(portalsSecret) + "/portals.yaml"})
		add(envVar{
			Comment: []string{
				"Portals installed as the application are called with the tokens",
				"the subscriptions service stores in B24_TOKENS: the same key",
				"(Secret b24hub-credentials) and application (Secret b24hub-app).",
			},
			Name: "B24HUB_CREDENTIALS_KEY_FILE", Value: secretDir(credentialsSecret) + "/key",
		})
		add(envVar{Name: "B24HUB_APP_CLIENT_ID", Secret: appSecret, Key: "client_id"})
		add(envVar{Name: "B24HUB_APP_CLIENT_SECRET_FILE", Value: secretDir(appSecret) + "/client_secret"})
	}
	for _, f := range s.SecretFiles {
		mountSecret(f.Secret)
		add(envVar{Comment: commentLines(f.Comment), Name: f.Env, Value: yamlString(secretDir(f.Secret) + "/" + f.Key)})
	}
	// Its own NATS identity: the nkey seed of its user in
	// deploy/nats/permissions.yaml (docs/runbooks/rotate-nats-credentials.md).
	natsSecret := NATSSecret(s.Name)
	mountSecret(natsSecret)
	add(envVar{Comment: []string{"Its own NATS user (deploy/nats/permissions.yaml): the nkey seed."},
		Name: "B24HUB_NATS_NKEY", Value: yamlString(secretDir(natsSecret) + "/" + NATSSecretKey)})
	add(envVar{Name: "GOMEMLIMIT", Value: v.GoMemLimit})

	seen := map[string]bool{}
	for _, e := range v.Env {
		if seen[e.Name] {
			return nil, fmt.Errorf("render: service %q: %s is set twice; the renderer already derives it (addresses, database, portals) or it is declared twice", s.Name, e.Name)
		}
		seen[e.Name] = true
	}
	return v, nil
}

// Consumes reports whether the service reads any stream.
func (v *view) Consumes() bool { return len(v.Consumers) > 0 }

// PortsOf returns the service's declared ports with the given exposure.
func (v *view) PortsOf(e svcdecl.Exposure) []svcdecl.Port {
	var out []svcdecl.Port
	for _, p := range v.Ports {
		if p.Exposure == e {
			out = append(out, p)
		}
	}
	return out
}

// ClientLabel is the pod label that lets a pod reach the service's cluster ports.
func (v *view) ClientLabel() string { return "b24hub.io/" + v.Name + "-client" }

func commentLines(c string) []string {
	if strings.TrimSpace(c) == "" {
		return nil
	}
	return strings.Split(strings.TrimSpace(c), "\n")
}

// yamlString returns s as a YAML scalar: bare when YAML reads it back as
// the same string, double-quoted (JSON escaping, which YAML accepts)
// otherwise.
func yamlString(s string) string {
	bare := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-", r)) {
			bare = false
		}
	}
	if bare {
		if _, err := strconv.ParseFloat(s, 64); err == nil {
			bare = false
		}
		switch strings.ToLower(s) {
		case "true", "false", "yes", "no", "on", "off", "y", "n", "null", "~":
			bare = false
		}
	}
	if bare {
		return s
	}
	return strconv.Quote(s)
}
