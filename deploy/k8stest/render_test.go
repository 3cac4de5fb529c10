package k8stest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// repoRoot is the workspace root, relative to this package's directory.
const repoRoot = "../.."

// overlays are the kustomize overlays every test renders.
var overlays = []string{"dev", "prod"}

// Rendered is one overlay's output, strictly decoded into the real
// Kubernetes types.
type Rendered struct {
	Overlay   string
	YAML      []byte // the whole rendered stream, for kube-score
	Namespace string

	Deployments     []*appsv1.Deployment
	Jobs            []*batchv1.Job
	Services        []*corev1.Service
	ConfigMaps      []*corev1.ConfigMap
	Secrets         []*corev1.Secret
	ServiceAccounts []*corev1.ServiceAccount
	HPAs            []*autoscalingv2.HorizontalPodAutoscaler
	PDBs            []*policyv1.PodDisruptionBudget
	NetPols         []*networkingv1.NetworkPolicy
	Ingresses       []*networkingv1.Ingress
	ServiceMonitors []*monitoringv1.ServiceMonitor
	PodMonitors     []*monitoringv1.PodMonitor
	PrometheusRules []*monitoringv1.PrometheusRule
	Others          []string // kind/name of anything else: a test fails on them
}

var (
	scheme   = runtime.NewScheme()
	decoder  runtime.Decoder
	renderMu sync.Mutex
	rendered = map[string]*Rendered{}
)

func init() {
	for _, add := range []func(*runtime.Scheme) error{
		appsv1.AddToScheme, batchv1.AddToScheme, corev1.AddToScheme, autoscalingv2.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			panic(err)
		}
	}
	decoder = serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// render renders an overlay once per test binary and decodes it strictly.
func render(t *testing.T, overlay string) *Rendered {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if r, ok := rendered[overlay]; ok {
		return r
	}
	r, err := renderOverlay(overlay)
	if err != nil {
		t.Fatalf("overlay %s: %v", overlay, err)
	}
	rendered[overlay] = r
	return r
}

func renderOverlay(overlay string) (*Rendered, error) {
	dir := filepath.Join(repoRoot, "k8s", "overlays", overlay)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	all, err := resMap.AsYaml()
	if err != nil {
		return nil, err
	}
	r := &Rendered{Overlay: overlay, YAML: all}
	var errs []string
	for _, res := range resMap.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return nil, err
		}
		id := res.GetKind() + "/" + res.GetName()
		if ns := res.GetNamespace(); ns != "" {
			if r.Namespace == "" {
				r.Namespace = ns
			} else if r.Namespace != ns {
				errs = append(errs, fmt.Sprintf("%s: namespace %q differs from %q", id, ns, r.Namespace))
			}
		}
		obj, _, err := decoder.Decode(y, nil, nil)
		if err != nil {
			if runtime.IsNotRegisteredError(err) {
				r.Others = append(r.Others, id)
				continue
			}
			errs = append(errs, fmt.Sprintf("%s: strict decode: %v", id, err))
			continue
		}
		switch o := obj.(type) {
		case *appsv1.Deployment:
			r.Deployments = append(r.Deployments, o)
		case *batchv1.Job:
			r.Jobs = append(r.Jobs, o)
		case *corev1.Service:
			r.Services = append(r.Services, o)
		case *corev1.ConfigMap:
			r.ConfigMaps = append(r.ConfigMaps, o)
		case *corev1.Secret:
			r.Secrets = append(r.Secrets, o)
		case *corev1.ServiceAccount:
			r.ServiceAccounts = append(r.ServiceAccounts, o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.HPAs = append(r.HPAs, o)
		case *policyv1.PodDisruptionBudget:
			r.PDBs = append(r.PDBs, o)
		case *networkingv1.NetworkPolicy:
			r.NetPols = append(r.NetPols, o)
		case *networkingv1.Ingress:
			r.Ingresses = append(r.Ingresses, o)
		case *monitoringv1.ServiceMonitor:
			r.ServiceMonitors = append(r.ServiceMonitors, o)
		case *monitoringv1.PodMonitor:
			r.PodMonitors = append(r.PodMonitors, o)
		case *monitoringv1.PrometheusRule:
			r.PrometheusRules = append(r.PrometheusRules, o)
		default:
			r.Others = append(r.Others, fmt.Sprintf("%s (%T)", id, obj))
		}
	}
	if len(errs) > 0 {
		sort.Strings(errs)
		return nil, fmt.Errorf("%d objects failed:\n  %s", len(errs), strings.Join(errs, "\n  "))
	}
	return r, nil
}

// podSpecs are every pod template in an overlay: Deployments and Jobs.
type workload struct {
	Kind, Name string
	Labels     map[string]string // pod template labels
	Spec       *corev1.PodSpec
}

func (w workload) String() string { return w.Kind + "/" + w.Name }

func (r *Rendered) workloads() []workload {
	var out []workload
	for _, d := range r.Deployments {
		out = append(out, workload{"Deployment", d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec})
	}
	for _, j := range r.Jobs {
		out = append(out, workload{"Job", j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec})
	}
	return out
}

func (r *Rendered) deployment(name string) *appsv1.Deployment {
	for _, d := range r.Deployments {
		if d.Name == name {
			return d
		}
	}
	return nil
}

func (r *Rendered) configMap(name string) *corev1.ConfigMap {
	for _, c := range r.ConfigMaps {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// containerEnv resolves a container's environment: envFrom ConfigMaps (by
// their rendered, hash-suffixed names) and then env. Values from Secrets or
// fields are returned as "<from secret NAME/KEY>" and similar.
func (r *Rendered) containerEnv(t *testing.T, w workload, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := r.configMap(ef.ConfigMapRef.Name)
			if cm == nil {
				t.Errorf("%s container %s: envFrom ConfigMap %q is not in the overlay", w, c.Name, ef.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			t.Errorf("%s container %s: envFrom Secret %q: list secret keys explicitly so the code check sees them", w, c.Name, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = fmt.Sprintf("<from secret %s/%s>", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
		case e.ValueFrom.ConfigMapKeyRef != nil:
			env[e.Name] = fmt.Sprintf("<from configmap %s/%s>", e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key)
		default:
			env[e.Name] = "<from field>"
		}
	}
	return env
}

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenderStrict renders every overlay and strictly decodes every object
// into its Kubernetes or Prometheus Operator type.
func TestRenderStrict(t *testing.T) {
	for _, o := range overlays {
		t.Run(o, func(t *testing.T) {
			r := render(t, o)
			if len(r.Others) > 0 {
				t.Errorf("overlay %s: objects of kinds the tests do not know (add them to the decoder and the policies): %v", o, r.Others)
			}
			if r.Namespace == "" {
				t.Errorf("overlay %s: sets no namespace", o)
			}
			t.Logf("overlay %s: %d deployments, %d jobs, %d services, %d network policies, namespace %s",
				o, len(r.Deployments), len(r.Jobs), len(r.Services), len(r.NetPols), r.Namespace)
		})
	}
}
