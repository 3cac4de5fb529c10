package k8stest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	nonRootUID          = 65532
	defaultShutdownWait = 20 * time.Second // B24HUB_SHUTDOWN_TIMEOUT default
	drainMargin         = 5 * time.Second  // NATS drain and process exit after the HTTP shutdown
)

// containerRule checks one container of one workload.
type containerRule struct {
	name  string
	jobs  bool // applies to Job containers too
	check func(r *Rendered, w workload, c corev1.Container) error
}

var containerRules = []containerRule{
	{"readiness probe on /readyz of a named container port", false, func(_ *Rendered, _ workload, c corev1.Container) error {
		return checkProbe(c, c.ReadinessProbe, "/readyz")
	}},
	{"liveness probe on /healthz of a named container port", false, func(_ *Rendered, _ workload, c corev1.Container) error {
		return checkProbe(c, c.LivenessProbe, "/healthz")
	}},
	{"cpu and memory requests, memory limit", true, func(_ *Rendered, _ workload, c corev1.Container) error {
		var missing []string
		for _, n := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
			if q, ok := c.Resources.Requests[n]; !ok || q.IsZero() {
				missing = append(missing, "requests."+string(n))
			}
		}
		for _, n := range []corev1.ResourceName{corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
			if q, ok := c.Resources.Limits[n]; !ok || q.IsZero() {
				missing = append(missing, "limits."+string(n))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("missing %s", strings.Join(missing, ", "))
		}
		if c.Resources.Requests.Memory().Cmp(*c.Resources.Limits.Memory()) > 0 {
			return fmt.Errorf("memory request %s above limit %s", c.Resources.Requests.Memory(), c.Resources.Limits.Memory())
		}
		return nil
	}},
	{"GOMEMLIMIT between 70% and 95% of the memory limit", false, func(r *Rendered, w workload, c corev1.Container) error {
		var v string
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				v = e.Value
			}
		}
		if v == "" {
			return fmt.Errorf("GOMEMLIMIT not set: the Go GC would not know the container's memory limit")
		}
		q, err := resource.ParseQuantity(strings.TrimSuffix(v, "B"))
		if err != nil {
			return fmt.Errorf("GOMEMLIMIT=%q: %v", v, err)
		}
		lim := c.Resources.Limits.Memory().Value()
		if ratio := float64(q.Value()) / float64(lim); ratio < 0.70 || ratio > 0.95 {
			return fmt.Errorf("GOMEMLIMIT=%s is %.0f%% of the memory limit %s", v, ratio*100, c.Resources.Limits.Memory())
		}
		return nil
	}},
	{"runs as non-root UID 65532", true, func(_ *Rendered, w workload, c corev1.Container) error {
		nonRoot, uid := podAndContainerUser(w.Spec, c)
		if !nonRoot {
			return fmt.Errorf("runAsNonRoot is not true")
		}
		if uid != nonRootUID {
			return fmt.Errorf("runAsUser is %d, want %d (distroless nonroot)", uid, nonRootUID)
		}
		return nil
	}},
	{"read-only root filesystem", true, func(_ *Rendered, _ workload, c corev1.Container) error {
		if c.SecurityContext == nil || c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem {
			return fmt.Errorf("securityContext.readOnlyRootFilesystem is not true")
		}
		return nil
	}},
	{"no privilege escalation, not privileged", true, func(_ *Rendered, _ workload, c corev1.Container) error {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			return fmt.Errorf("securityContext.allowPrivilegeEscalation is not false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			return fmt.Errorf("privileged")
		}
		return nil
	}},
	{"all capabilities dropped, none added", true, func(_ *Rendered, _ workload, c corev1.Container) error {
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			return fmt.Errorf("capabilities.drop does not contain ALL")
		}
		if len(sc.Capabilities.Add) > 0 {
			return fmt.Errorf("capabilities.add = %v", sc.Capabilities.Add)
		}
		return nil
	}},
	{"RuntimeDefault seccomp profile", true, func(_ *Rendered, w workload, c corev1.Container) error {
		p := w.Spec.SecurityContext.SeccompProfile
		if c.SecurityContext != nil && c.SecurityContext.SeccompProfile != nil {
			p = c.SecurityContext.SeccompProfile
		}
		if p == nil || p.Type != corev1.SeccompProfileTypeRuntimeDefault {
			return fmt.Errorf("seccompProfile is not RuntimeDefault")
		}
		return nil
	}},
	{"preStop pause and a grace period longer than the drain", false, func(r *Rendered, w workload, c corev1.Container) error {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			return fmt.Errorf("no lifecycle.preStop.sleep (the image has no shell, so exec sleep cannot work)")
		}
		pause := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		if pause < 3*time.Second {
			return fmt.Errorf("preStop sleep %s: too short for endpoints to drop the pod", pause)
		}
		drain := defaultShutdownWait
		for _, e := range c.Env {
			if e.Name == "B24HUB_SHUTDOWN_TIMEOUT" {
				d, err := time.ParseDuration(e.Value)
				if err != nil {
					return fmt.Errorf("B24HUB_SHUTDOWN_TIMEOUT=%q: %v", e.Value, err)
				}
				drain = d
			}
		}
		if w.Spec.TerminationGracePeriodSeconds == nil {
			return fmt.Errorf("terminationGracePeriodSeconds not set (default 30s)")
		}
		grace := time.Duration(*w.Spec.TerminationGracePeriodSeconds) * time.Second
		if need := pause + drain + drainMargin; grace <= need {
			return fmt.Errorf("terminationGracePeriodSeconds %s must exceed preStop %s + shutdown %s + margin %s", grace, pause, drain, drainMargin)
		}
		return nil
	}},
	{"image from the b24hub registry with a release tag or digest", true, func(r *Rendered, _ workload, c corev1.Container) error {
		img := c.Image
		if !strings.HasPrefix(img, "ghcr.io/b24hub/b24hub/") {
			return fmt.Errorf("image %q is not a b24hub image (kustomize images: not applied?)", img)
		}
		name, digest, _ := strings.Cut(img, "@")
		_, tag, tagged := strings.Cut(strings.TrimPrefix(name, "ghcr.io/"), ":")
		switch {
		case digest != "" && !strings.HasPrefix(digest, "sha256:"):
			return fmt.Errorf("image %q: digest is not sha256", img)
		case digest == "" && !tagged:
			return fmt.Errorf("image %q has no tag", img)
		case tag == "latest":
			return fmt.Errorf("image %q uses :latest", img)
		case r.Overlay == "prod" && digest == "" && !isReleaseTag(tag):
			return fmt.Errorf("image %q: prod needs a release tag (x.y.z) or a digest", img)
		}
		return nil
	}},
	{"service account token not mounted", true, func(_ *Rendered, w workload, _ corev1.Container) error {
		if w.Spec.AutomountServiceAccountToken == nil || *w.Spec.AutomountServiceAccountToken {
			return fmt.Errorf("automountServiceAccountToken is not false (no service needs the Kubernetes API)")
		}
		return nil
	}},
	{"writable paths are emptyDirs with a size limit", true, func(_ *Rendered, w workload, c corev1.Container) error {
		for _, m := range c.VolumeMounts {
			for _, v := range w.Spec.Volumes {
				if v.Name == m.Name && v.EmptyDir != nil && v.EmptyDir.SizeLimit == nil {
					return fmt.Errorf("emptyDir %q has no sizeLimit", v.Name)
				}
				if v.Name == m.Name && v.Secret != nil && !m.ReadOnly {
					return fmt.Errorf("secret volume %q mounted read-write", v.Name)
				}
				if v.Name == m.Name && v.Secret != nil && m.SubPath != "" {
					return fmt.Errorf("secret volume %q mounted with subPath: updates would never reach the file", v.Name)
				}
			}
		}
		return nil
	}},
}

func isReleaseTag(tag string) bool {
	parts := strings.Split(strings.TrimPrefix(tag, "v"), ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func podAndContainerUser(p *corev1.PodSpec, c corev1.Container) (bool, int64) {
	var nonRoot bool
	var uid int64 = -1
	if sc := p.SecurityContext; sc != nil {
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsNonRoot != nil {
			nonRoot = *sc.RunAsNonRoot
		}
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
	}
	return nonRoot, uid
}

func checkProbe(c corev1.Container, p *corev1.Probe, path string) error {
	if p == nil {
		return fmt.Errorf("no probe")
	}
	if p.HTTPGet == nil {
		return fmt.Errorf("probe is not httpGet")
	}
	if p.HTTPGet.Path != path {
		return fmt.Errorf("probe path %q, want %q", p.HTTPGet.Path, path)
	}
	if p.HTTPGet.Port.Type != intstr.String {
		return fmt.Errorf("probe port %s is a number; use the container port's name", p.HTTPGet.Port.String())
	}
	if containerPort(c, p.HTTPGet.Port.StrVal) == 0 {
		return fmt.Errorf("probe port %q is not a port of the container", p.HTTPGet.Port.StrVal)
	}
	return nil
}

func containerPort(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// TestContainerPolicies applies every container rule to every container of
// every Deployment (and the Job-relevant ones to Jobs), in every overlay.
func TestContainerPolicies(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		for _, rule := range containerRules {
			t.Run(o+"/"+rule.name, func(t *testing.T) {
				for _, w := range r.workloads() {
					if w.Kind == "Job" && !rule.jobs {
						continue
					}
					for _, c := range append(slices.Clone(w.Spec.InitContainers), w.Spec.Containers...) {
						if err := rule.check(r, w, c); err != nil {
							t.Errorf("%s %s container %s: rule %q: %v", o, w, c.Name, rule.name, err)
						}
					}
				}
			})
		}
	}
}

// objectRule checks one overlay as a whole.
type objectRule struct {
	name  string
	check func(t *testing.T, r *Rendered)
}

var objectRules = []objectRule{
	{"every service has a Deployment", func(t *testing.T, r *Rendered) {
		for _, s := range services {
			if r.deployment(s.Name) == nil {
				t.Errorf("%s: no Deployment %q", r.Overlay, s.Name)
			}
		}
		if len(r.Deployments) != len(services) {
			t.Errorf("%s: %d Deployments, the services table has %d", r.Overlay, len(r.Deployments), len(services))
		}
	}},
	{"HPA for scale-out services, none for lease holders; no static replicas under an HPA", func(t *testing.T, r *Rendered) {
		hpaFor := map[string]bool{}
		for _, h := range r.HPAs {
			if h.Spec.ScaleTargetRef.Kind != "Deployment" || r.deployment(h.Spec.ScaleTargetRef.Name) == nil {
				t.Errorf("%s: HPA %s targets %s/%s, which is not in the overlay", r.Overlay, h.Name, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			}
			hpaFor[h.Spec.ScaleTargetRef.Name] = true
			if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 1 || *h.Spec.MinReplicas > h.Spec.MaxReplicas {
				t.Errorf("%s: HPA %s: minReplicas must be 1..maxReplicas", r.Overlay, h.Name)
			}
			if r.Overlay == "prod" && *h.Spec.MinReplicas < 2 {
				t.Errorf("prod: HPA %s: minReplicas %d, want >= 2 for availability", h.Name, *h.Spec.MinReplicas)
			}
			if len(h.Spec.Metrics) == 0 {
				t.Errorf("%s: HPA %s has no metrics", r.Overlay, h.Name)
			}
		}
		for _, s := range services {
			d := r.deployment(s.Name)
			if d == nil {
				continue
			}
			switch s.Scaling {
			case "hpa":
				if !hpaFor[s.Name] {
					t.Errorf("%s: Deployment %s scales out but has no HPA", r.Overlay, s.Name)
				}
				if d.Spec.Replicas != nil {
					t.Errorf("%s: Deployment %s sets spec.replicas=%d although an HPA owns it (every apply would reset the scale)", r.Overlay, s.Name, *d.Spec.Replicas)
				}
			case "lease":
				if hpaFor[s.Name] {
					t.Errorf("%s: Deployment %s holds a lease and must not be autoscaled", r.Overlay, s.Name)
				}
				if d.Spec.Replicas == nil || *d.Spec.Replicas < 1 {
					t.Errorf("%s: Deployment %s: set spec.replicas (lease holder)", r.Overlay, s.Name)
				}
				if r.Overlay == "prod" && *d.Spec.Replicas < 2 {
					t.Errorf("prod: Deployment %s: %d replica; run a standby for the lease", s.Name, *d.Spec.Replicas)
				}
			}
		}
	}},
	{"a PodDisruptionBudget per Deployment that never blocks a drain", func(t *testing.T, r *Rendered) {
		for _, d := range r.Deployments {
			var found int
			for _, p := range r.PDBs {
				sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
				if err != nil {
					t.Errorf("%s: PDB %s: %v", r.Overlay, p.Name, err)
					continue
				}
				if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					continue
				}
				found++
				switch {
				case p.Spec.MaxUnavailable != nil:
					if p.Spec.MaxUnavailable.IntValue() < 1 && p.Spec.MaxUnavailable.Type == intstr.Int {
						t.Errorf("%s: PDB %s: maxUnavailable 0 blocks every node drain", r.Overlay, p.Name)
					}
				case p.Spec.MinAvailable != nil:
					if d.Spec.Replicas != nil && p.Spec.MinAvailable.Type == intstr.Int && int32(p.Spec.MinAvailable.IntValue()) >= *d.Spec.Replicas {
						t.Errorf("%s: PDB %s: minAvailable %d >= replicas %d blocks every node drain", r.Overlay, p.Name, p.Spec.MinAvailable.IntValue(), *d.Spec.Replicas)
					}
				default:
					t.Errorf("%s: PDB %s sets neither minAvailable nor maxUnavailable", r.Overlay, p.Name)
				}
			}
			if found != 1 {
				t.Errorf("%s: Deployment %s is covered by %d PodDisruptionBudgets, want 1", r.Overlay, d.Name, found)
			}
		}
	}},
	{"topology spread over zones and nodes", func(t *testing.T, r *Rendered) {
		for _, d := range r.Deployments {
			keys := map[string]bool{}
			for _, c := range d.Spec.Template.Spec.TopologySpreadConstraints {
				keys[c.TopologyKey] = true
				sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
				if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
					t.Errorf("%s: Deployment %s: topology spread on %s does not select the Deployment's own pods", r.Overlay, d.Name, c.TopologyKey)
				}
			}
			for _, k := range []string{"kubernetes.io/hostname", "topology.kubernetes.io/zone"} {
				if !keys[k] {
					t.Errorf("%s: Deployment %s: no topology spread constraint on %s", r.Overlay, d.Name, k)
				}
			}
		}
	}},
	{"selectors match their pods; Service ports name container ports", func(t *testing.T, r *Rendered) {
		for _, d := range r.Deployments {
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("%s: Deployment %s: selector does not match its own template", r.Overlay, d.Name)
			}
		}
		for _, s := range r.Services {
			var matched []string
			for _, d := range r.Deployments {
				if labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
					matched = append(matched, d.Name)
					for _, p := range s.Spec.Ports {
						if p.TargetPort.Type != intstr.String || containerPort(d.Spec.Template.Spec.Containers[0], p.TargetPort.StrVal) != p.Port {
							t.Errorf("%s: Service %s port %s: targetPort %s is not the container port %q with the same number", r.Overlay, s.Name, p.Name, p.TargetPort.String(), p.Name)
						}
					}
				}
			}
			if len(matched) != 1 {
				t.Errorf("%s: Service %s selects Deployments %v, want exactly one", r.Overlay, s.Name, matched)
			}
		}
	}},
	{"a ServiceMonitor per Service on its metrics port", func(t *testing.T, r *Rendered) {
		for _, s := range r.Services {
			const want = "admin"
			var ok bool
			for _, sm := range r.ServiceMonitors {
				sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
				if err != nil || !sel.Matches(labels.Set(s.Labels)) {
					continue
				}
				for _, ep := range sm.Spec.Endpoints {
					if ep.Port == want && ep.Path == "/metrics" {
						ok = true
					}
				}
			}
			if !ok {
				t.Errorf("%s: Service %s: no ServiceMonitor scrapes port %q at /metrics", r.Overlay, s.Name, want)
			}
		}
	}},
	{"the ingress is exposed with TLS, only on the event path", func(t *testing.T, r *Rendered) {
		if len(r.Ingresses) != 1 {
			t.Fatalf("%s: %d Ingress objects, want 1 (only the ingress service is reachable from outside)", r.Overlay, len(r.Ingresses))
		}
		ing := r.Ingresses[0]
		if ing.Spec.IngressClassName == nil {
			t.Errorf("%s: Ingress %s: no ingressClassName", r.Overlay, ing.Name)
		}
		tlsHosts := map[string]bool{}
		for _, tls := range ing.Spec.TLS {
			if tls.SecretName == "" {
				t.Errorf("%s: Ingress %s: TLS entry without secretName", r.Overlay, ing.Name)
			}
			for _, h := range tls.Hosts {
				tlsHosts[h] = true
			}
		}
		if ing.Spec.DefaultBackend != nil {
			t.Errorf("%s: Ingress %s has a default backend: only the event path may be routed", r.Overlay, ing.Name)
		}
		for _, rule := range ing.Spec.Rules {
			if rule.Host == "" || !tlsHosts[rule.Host] {
				t.Errorf("%s: Ingress %s: host %q has no TLS", r.Overlay, ing.Name, rule.Host)
			}
			for _, p := range rule.HTTP.Paths {
				public := p.PathType != nil && (p.Path == "/bitrix24/events" && *p.PathType == networkingv1.PathTypePrefix ||
					p.Path == "/onprem/v1/events" && *p.PathType == networkingv1.PathTypeExact)
				if !public {
					t.Errorf("%s: Ingress %s routes %q: only Prefix /bitrix24/events and Exact /onprem/v1/events may be public (not /metrics, /healthz, /readyz)", r.Overlay, ing.Name, p.Path)
				}
				b := p.Backend.Service
				if b == nil || b.Name != "ingress" || b.Port.Name != "http" {
					t.Errorf("%s: Ingress %s: backend must be Service ingress port http", r.Overlay, ing.Name)
				}
			}
		}
	}},
	{"no Secret objects, no NACK resources (one owner of streams)", func(t *testing.T, r *Rendered) {
		for _, s := range r.Secrets {
			t.Errorf("%s: Secret %s is rendered from git; reference secrets, never commit their values", r.Overlay, s.Name)
		}
		for _, o := range r.Others {
			if strings.Contains(o, "jetstream.nats.io") || strings.HasPrefix(o, "Stream/") || strings.HasPrefix(o, "Consumer/") {
				t.Errorf("%s: %s: streams are provisioned by the topology Job (b24ctl topology apply) only", r.Overlay, o)
			}
		}
	}},
	{"Jobs are bounded and retry on failure", func(t *testing.T, r *Rendered) {
		var topology, migrate int
		for _, j := range r.Jobs {
			switch j.Spec.Template.Labels["app.kubernetes.io/component"] {
			case "topology":
				topology++
			case "migrate":
				migrate++
			default:
				t.Errorf("%s: Job %s: component label must be topology or migrate", r.Overlay, j.Name)
			}
			if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil || j.Spec.TTLSecondsAfterFinished == nil {
				t.Errorf("%s: Job %s: set backoffLimit, activeDeadlineSeconds and ttlSecondsAfterFinished", r.Overlay, j.Name)
			}
			if rp := j.Spec.Template.Spec.RestartPolicy; rp != corev1.RestartPolicyOnFailure && rp != corev1.RestartPolicyNever {
				t.Errorf("%s: Job %s: restartPolicy %q", r.Overlay, j.Name, rp)
			}
		}
		if topology != 1 {
			t.Errorf("%s: %d topology Jobs, want exactly 1 (the one owner of stream definitions)", r.Overlay, topology)
		}
		// One migrate Job per PostgreSQL service that implements `migrate`
		// (TestJobsMatchCode checks the code side).
		if migrate > len(services) {
			t.Errorf("%s: %d migrate Jobs for %d services", r.Overlay, migrate, len(services))
		}
	}},
	{"pod labels grant exactly the network access the service needs", func(t *testing.T, r *Rendered) {
		for _, s := range services {
			d := r.deployment(s.Name)
			if d == nil {
				continue
			}
			l := d.Spec.Template.Labels
			if got := l["b24hub.io/postgres-client"] == "true"; got != s.Postgres {
				t.Errorf("%s: Deployment %s: label b24hub.io/postgres-client=%v, want %v", r.Overlay, s.Name, got, s.Postgres)
			}
			if got := l["b24hub.io/portal-client"] == "true"; got != s.Portals {
				t.Errorf("%s: Deployment %s: label b24hub.io/portal-client=%v, want %v", r.Overlay, s.Name, got, s.Portals)
			}
		}
		for _, w := range r.workloads() {
			for _, c := range w.Spec.Containers {
				for _, e := range c.Env {
					if e.Name == "B24HUB_DATABASE_URL" && w.Labels["b24hub.io/postgres-client"] != "true" {
						t.Errorf("%s: %s reads B24HUB_DATABASE_URL but lacks label b24hub.io/postgres-client=true (its egress to PostgreSQL would be denied)", r.Overlay, w)
					}
				}
			}
		}
	}},
}

func TestObjectPolicies(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		for _, rule := range objectRules {
			t.Run(o+"/"+rule.name, func(t *testing.T) { rule.check(t, r) })
		}
	}
}
