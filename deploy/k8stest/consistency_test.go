package k8stest

import (
	"fmt"
	"net"
	"os"
	"path"
	"regexp"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// mustSet are variables whose defaults only make sense on a laptop (or that
// are required): when a service's own code reads one, its Deployment must
// set it, directly or through its _FILE variant.
var mustSet = []string{
	"B24HUB_NATS_URL", "B24HUB_DATABASE_URL", "B24HUB_PORTALS_FILE", "B24HUB_MONITOR_TOKEN",
	"B24HUB_CREDENTIALS_KEY", "B24HUB_HANDLER_URL", "B24HUB_APP_CLIENT_ID", "B24HUB_APP_CLIENT_SECRET",
}

// workloadService names the service whose code a workload runs.
func workloadService(w workload, c corev1.Container) string {
	img := c.Image
	if i := strings.LastIndex(img, "/"); i >= 0 {
		img = img[i+1:]
	}
	img, _, _ = strings.Cut(img, "@")
	img, _, _ = strings.Cut(img, ":")
	return img
}

// TestEnvMatchesCode: every environment variable a manifest sets is one the
// service's code (or a library it uses) reads, and every laptop-default
// variable the code reads is set. The code is scanned for quoted B24HUB_*
// names, so this follows ConfigFromEnv as it changes.
func TestEnvMatchesCode(t *testing.T) {
	facts := map[string]codeFacts{}
	for _, o := range overlays {
		r := render(t, o)
		for _, w := range r.workloads() {
			for _, c := range w.Spec.Containers {
				svc := workloadService(w, c)
				t.Run(fmt.Sprintf("%s/%s/%s", o, w, c.Name), func(t *testing.T) {
					f, ok := facts[svc]
					if !ok {
						f = serviceFacts(t, svc)
						facts[svc] = f
					}
					if !f.Exists {
						t.Skipf("services/%s/cmd/%s/main.go does not exist yet: environment not checked against code", svc, svc)
					}
					env := r.containerEnv(t, w, c)
					for name := range env {
						if !f.reads(name) {
							t.Errorf("%s %s container %s sets %s, which services/%s and its libraries never read (typo, or a setting that was renamed?)", o, w, c.Name, name, svc)
						}
					}
					if w.Kind == "Job" {
						return
					}
					for _, name := range mustSet {
						if f.Own[name] {
							_, direct := env[name]
							_, file := env[name+"_FILE"]
							if !direct && !file {
								t.Errorf("%s %s container %s: services/%s reads %s but the manifest does not set it (the default is for local runs)", o, w, c.Name, svc, name)
							}
						}
					}
				})
			}
		}
	}
}

var addrEnvRe = regexp.MustCompile(`^B24HUB_[A-Z_]*ADDR$`)

// TestPortsMatchListenAddresses: every container port is the port of a
// listen-address variable the container sets, and every such address has a
// container port.
func TestPortsMatchListenAddresses(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		for _, d := range r.Deployments {
			for _, c := range d.Spec.Template.Spec.Containers {
				addrs := map[string]string{}
				for _, e := range c.Env {
					if addrEnvRe.MatchString(e.Name) {
						_, port, err := net.SplitHostPort(e.Value)
						if err != nil {
							t.Errorf("%s Deployment/%s: %s=%q: %v", o, d.Name, e.Name, e.Value, err)
							continue
						}
						addrs[port] = e.Name
					}
				}
				for _, p := range c.Ports {
					if _, ok := addrs[fmt.Sprint(p.ContainerPort)]; !ok {
						t.Errorf("%s Deployment/%s: container port %s (%d) matches no B24HUB_*_ADDR the container sets; set the address explicitly so port and listener cannot drift", o, d.Name, p.Name, p.ContainerPort)
					}
				}
				for port, name := range addrs {
					var found bool
					for _, p := range c.Ports {
						found = found || fmt.Sprint(p.ContainerPort) == port
					}
					if !found {
						t.Errorf("%s Deployment/%s: %s listens on %s but no container port declares it", o, d.Name, name, port)
					}
				}
			}
		}
	}
}

// TestProbePathsServedByCode: the probe and scrape paths the manifests use
// are routes the code registers.
func TestProbePathsServedByCode(t *testing.T) {
	admin := string(readFile(t, "libs/telemetry/admin.go"))
	for _, route := range []string{`"GET /healthz"`, `"GET /readyz"`, `"GET /metrics"`} {
		if !strings.Contains(admin, route) {
			t.Errorf("libs/telemetry/admin.go no longer registers %s; the probes and ServiceMonitors use it", route)
		}
	}
	for _, s := range services {
		f := serviceFacts(t, s.Name)
		if !f.Exists {
			t.Logf("services/%s not written yet: probe routes not checked", s.Name)
			continue
		}
		if !strings.Contains(f.Text, "telemetry.NewHealth(") || !strings.Contains(f.Text, ".Register(") {
			t.Errorf("services/%s does not build telemetry.Health and register it: /healthz and /readyz would 404", s.Name)
		}
		if s.Name == "ingress" {
			for _, p := range []string{`"/healthz"`, `"/readyz"`, `"/metrics"`, `"/bitrix24/events"`, `"/onprem/v1/events"`} {
				if !strings.Contains(f.Text, p) {
					t.Errorf("services/ingress does not route %s on its main port; the probes, ServiceMonitor and Ingress use it", p)
				}
			}
		}
	}
}

// TestJobsMatchCode: the topology Job's command exists in b24ctl; a
// PostgreSQL service has a migrate Job exactly when its code implements the
// `migrate` argument (a service that ignores its arguments would run for
// ever inside the Job).
func TestJobsMatchCode(t *testing.T) {
	r := render(t, "prod")
	jobFor := map[string]bool{}
	for _, j := range r.Jobs {
		c := j.Spec.Template.Spec.Containers[0]
		svc := workloadService(workload{}, c)
		if j.Spec.Template.Labels["app.kubernetes.io/component"] == "migrate" {
			jobFor[svc] = true
		}
		t.Run(j.Name, func(t *testing.T) {
			f := serviceFacts(t, svc)
			if !f.Exists {
				t.Skipf("services/%s/cmd/%s/main.go does not exist yet: Job %s not checked against code", svc, svc, j.Name)
			}
			// Positional words form the command ("topology apply", registered
			// as one string or word by word); --flags must be defined.
			var words []string
			for i := 0; i < len(c.Args); i++ {
				a := c.Args[i]
				if name, ok := strings.CutPrefix(a, "--"); ok {
					name, _, hasValue := strings.Cut(name, "=")
					if !strings.Contains(f.CommandText, `"`+name+`"`) {
						t.Errorf("Job %s passes flag --%s, which services/%s does not define", j.Name, name, svc)
					}
					if !hasValue {
						i++ // the flag's value
					}
					continue
				}
				words = append(words, a)
			}
			cmd := strings.Join(words, " ")
			whole := strings.Contains(f.CommandText, `"`+cmd+`"`)
			each := true
			for _, w := range words {
				each = each && strings.Contains(f.CommandText, `"`+w+`"`)
			}
			if !whole && !each {
				t.Errorf("Job %s runs `%s %s`, but services/%s has no %q command", j.Name, svc, strings.Join(c.Args, " "), svc, cmd)
			}
		})
	}
	for _, s := range services {
		f := serviceFacts(t, s.Name)
		if !f.Exists {
			continue
		}
		// svcmain answers `migrate` for every service, so only a service
		// with a schema must have its Job.
		if s.Postgres && strings.Contains(f.CommandText, `"migrate"`) && !jobFor[s.Name] {
			t.Errorf("services/%s implements `migrate` and declares a Database but has no migrate Job b24hub-migrate-%s: run go tool task render", s.Name, s.Name)
		}
	}
}

// TestHandlerURLMatchesIngress: the URL the subscriptions service binds
// Bitrix24 handlers to is the public Ingress host, over HTTPS.
func TestHandlerURLMatchesIngress(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		d := r.deployment("subscriptions")
		if d == nil || len(r.Ingresses) == 0 {
			t.Fatalf("%s: no subscriptions Deployment or Ingress", o)
		}
		var handler string
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "B24HUB_HANDLER_URL" {
				handler = e.Value
			}
		}
		want := "https://" + r.Ingresses[0].Spec.Rules[0].Host
		if handler != want {
			t.Errorf("%s: subscriptions B24HUB_HANDLER_URL=%q, want %q (the Ingress host; handlers are bound to it + /bitrix24/events)", o, handler, want)
		}
	}
}

// TestFileSettingsAreMounted: every *_FILE variable points into a mounted
// volume, and the file name is the Secret key docs/deploy.md creates.
func TestFileSettingsAreMounted(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		for _, w := range r.workloads() {
			for _, c := range w.Spec.Containers {
				for _, e := range c.Env {
					if !strings.HasSuffix(e.Name, "_FILE") {
						continue
					}
					var vol *corev1.Volume
					for _, m := range c.VolumeMounts {
						if path.Dir(e.Value) == m.MountPath {
							for i := range w.Spec.Volumes {
								if w.Spec.Volumes[i].Name == m.Name {
									vol = &w.Spec.Volumes[i]
								}
							}
						}
					}
					if vol == nil || vol.Secret == nil {
						t.Errorf("%s %s: %s=%s is not inside a mounted Secret volume", o, w, e.Name, e.Value)
						continue
					}
					if len(vol.Secret.Items) > 0 {
						t.Errorf("%s %s: secret volume %s projects items; mount the whole Secret", o, w, vol.Name)
					}
				}
			}
		}
	}
}

// TestSecretsDocumented: every Secret a manifest references is named in
// docs/deploy.md together with its key, so operators know what to create.
func TestSecretsDocumented(t *testing.T) {
	doc, err := os.ReadFile(repoRoot + "/docs/deploy.md")
	if err != nil {
		t.Fatalf("docs/deploy.md: %v", err)
	}
	refs := map[string]string{} // secret -> where
	for _, o := range overlays {
		r := render(t, o)
		for _, w := range r.workloads() {
			for _, v := range w.Spec.Volumes {
				if v.Secret != nil {
					refs[v.Secret.SecretName] = fmt.Sprintf("%s %s volume %s", o, w, v.Name)
				}
			}
			for _, c := range w.Spec.Containers {
				for _, e := range c.Env {
					if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
						refs[e.ValueFrom.SecretKeyRef.Name] = fmt.Sprintf("%s %s env %s", o, w, e.Name)
					}
				}
			}
		}
		for _, ing := range r.Ingresses {
			for _, tls := range ing.Spec.TLS {
				refs[tls.SecretName] = fmt.Sprintf("%s Ingress/%s TLS", o, ing.Name)
			}
		}
	}
	for name, where := range refs {
		if !strings.Contains(string(doc), name) {
			t.Errorf("Secret %s (used by %s) is not explained in docs/deploy.md", name, where)
		}
	}
}

// TestLeaseHoldersUseALease: a service deployed with a fixed replica count
// as a lease holder really elects one active instance in its code (NATS KV
// lease in eventbus.BucketLeases, or the monitor's PostgreSQL advisory-lock
// lease), so its standby replica cannot double the work.
func TestLeaseHoldersUseALease(t *testing.T) {
	for _, s := range services {
		if s.Scaling != "lease" {
			continue
		}
		f := serviceFacts(t, s.Name)
		if !f.Exists {
			t.Logf("services/%s not written yet: lease not checked", s.Name)
			continue
		}
		if !strings.Contains(f.OwnText, "BucketLeases") && !strings.Contains(f.OwnText, "Lease") {
			t.Errorf("services/%s runs %s with several replicas as a lease holder, but its code takes no lease", s.Name, "Deployment/"+s.Name)
		}
	}
}
