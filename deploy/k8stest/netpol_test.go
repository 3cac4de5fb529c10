package k8stest

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/libs/svcdecl"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// The world outside the b24hub pods, as the NetworkPolicies must see it.
// Pod labels are the ones the NATS chart and CloudNativePG put on their pods
// (deploy/nats/values.yaml release "nats"; deploy/postgres cluster b24-pg).
var (
	natsPodLabels = map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats", "app.kubernetes.io/instance": "nats"}
	pgPodLabels   = map[string]string{"cnpg.io/cluster": pgClusterName, "cnpg.io/instanceRole": "primary"}
	dnsPodLabels  = map[string]string{"k8s-app": "kube-dns"}
)

const (
	pgClusterName       = "b24-pg"
	ingressControllerNS = "ingress-nginx"
	prometheusNS        = "monitoring"
	collectorNS         = "observability"
	clientLabelPrefix   = "b24hub.io/"
)

// peerClass names what a NetworkPolicy peer lets a pod talk to, or "" when
// the peer is not one of the allowed destinations/sources.
func classifyEgressPeer(p networkingv1.NetworkPolicyPeer) string {
	switch {
	case p.IPBlock != nil:
		if (p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0") && p.PodSelector == nil && p.NamespaceSelector == nil {
			return "internet"
		}
	case p.NamespaceSelector != nil:
		ns := nsName(p.NamespaceSelector)
		switch {
		case ns == "kube-system" && matches(p.PodSelector, dnsPodLabels):
			return "dns"
		case ns == collectorNS && p.PodSelector == nil:
			return "otel"
		}
	case p.PodSelector != nil:
		switch {
		case matches(p.PodSelector, natsPodLabels) && len(p.PodSelector.MatchLabels) > 0:
			return "nats"
		case matches(p.PodSelector, pgPodLabels) && p.PodSelector.MatchLabels["cnpg.io/cluster"] == pgClusterName:
			return "postgres"
		}
	}
	return ""
}

func classifyIngressPeer(p networkingv1.NetworkPolicyPeer) string {
	switch {
	case p.IPBlock != nil:
		return ""
	case p.NamespaceSelector != nil && p.PodSelector == nil:
		switch nsName(p.NamespaceSelector) {
		case ingressControllerNS:
			return "ingress-controller"
		case prometheusNS:
			return "prometheus"
		}
	case p.NamespaceSelector == nil && p.PodSelector != nil && len(p.PodSelector.MatchExpressions) == 0 && len(p.PodSelector.MatchLabels) == 1:
		// b24hub.io/<service>-client=true: the clients of a service's
		// cluster ports.
		for k, v := range p.PodSelector.MatchLabels {
			label, prefixed := strings.CutPrefix(k, clientLabelPrefix)
			svc, client := strings.CutSuffix(label, "-client")
			if prefixed && client && v == "true" {
				return svc + "-client"
			}
		}
	}
	return ""
}

func nsName(s *metav1.LabelSelector) string {
	if s == nil || len(s.MatchExpressions) > 0 || len(s.MatchLabels) != 1 {
		return ""
	}
	return s.MatchLabels["kubernetes.io/metadata.name"]
}

func matches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	return err == nil && sel.Matches(labels.Set(l))
}

// portNumbers resolves a policy port (number or container port name) for a pod.
func portNumbers(spec *corev1.PodSpec, ports []networkingv1.NetworkPolicyPort) ([]string, error) {
	if len(ports) == 0 {
		return nil, fmt.Errorf("rule allows every port")
	}
	var out []string
	for _, p := range ports {
		if p.Port == nil {
			return nil, fmt.Errorf("port without a number allows every port")
		}
		if p.EndPort != nil {
			return nil, fmt.Errorf("port ranges are not used")
		}
		if p.Port.StrVal != "" {
			for _, c := range spec.Containers {
				if n := containerPort(c, p.Port.StrVal); n != 0 {
					out = append(out, fmt.Sprint(n))
				}
			}
			continue
		}
		out = append(out, fmt.Sprint(p.Port.IntVal))
	}
	return out, nil
}

// access is what the policies allow one pod: "class:port" entries.
type access struct{ in, out map[string]bool }

func podAccess(r *Rendered, w workload) (access, []string) {
	a := access{in: map[string]bool{}, out: map[string]bool{}}
	var problems []string
	var denyIn, denyOut bool
	for _, np := range r.NetPols {
		if !matches(&np.Spec.PodSelector, w.Labels) {
			continue
		}
		for _, pt := range np.Spec.PolicyTypes {
			denyIn = denyIn || pt == networkingv1.PolicyTypeIngress
			denyOut = denyOut || pt == networkingv1.PolicyTypeEgress
		}
		for i, rule := range np.Spec.Ingress {
			ports, err := portNumbers(w.Spec, rule.Ports)
			if err != nil {
				problems = append(problems, fmt.Sprintf("NetworkPolicy %s ingress rule %d: %v", np.Name, i, err))
			}
			if len(rule.From) == 0 {
				problems = append(problems, fmt.Sprintf("NetworkPolicy %s ingress rule %d has no 'from': it admits everyone", np.Name, i))
			}
			for _, peer := range rule.From {
				cls := classifyIngressPeer(peer)
				if cls == "" {
					problems = append(problems, fmt.Sprintf("NetworkPolicy %s admits an unexpected source %+v", np.Name, peer))
					continue
				}
				for _, p := range ports {
					a.in[cls+":"+p] = true
				}
			}
		}
		for i, rule := range np.Spec.Egress {
			ports, err := portNumbers(w.Spec, rule.Ports)
			if err != nil {
				problems = append(problems, fmt.Sprintf("NetworkPolicy %s egress rule %d: %v", np.Name, i, err))
			}
			if len(rule.To) == 0 {
				problems = append(problems, fmt.Sprintf("NetworkPolicy %s egress rule %d has no 'to': it allows every destination", np.Name, i))
			}
			for _, peer := range rule.To {
				cls := classifyEgressPeer(peer)
				if cls == "" {
					problems = append(problems, fmt.Sprintf("NetworkPolicy %s allows an unexpected destination %+v", np.Name, peer))
					continue
				}
				for _, p := range ports {
					a.out[cls+":"+p] = true
				}
			}
		}
	}
	if !denyIn || !denyOut {
		problems = append(problems, "not isolated for both ingress and egress (no default-deny policy selects it)")
	}
	return a, problems
}

// TestNetworkPolicies: only the ingress is reachable from outside (through
// the ingress controller); services reach DNS, NATS, the OTLP collector and,
// where they need them, PostgreSQL and the portals (HTTPS); nothing else.
func TestNetworkPolicies(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		t.Run(o, func(t *testing.T) {
			for _, w := range r.workloads() {
				a, problems := podAccess(r, w)
				for _, p := range problems {
					t.Errorf("%s %s: %s", o, w, p)
				}
				name := w.Labels["app.kubernetes.io/name"]
				wantIn := map[string]bool{}
				wantOut := map[string]bool{"dns:53": true, "nats:4222": true, "otel:4317": true, "otel:4318": true}
				if w.Kind == "Deployment" {
					// Prometheus on the admin port; public ports from the
					// ingress controller; cluster ports from the service's
					// labelled clients: as declared.
					d := declared(t, name)
					wantIn[fmt.Sprintf("prometheus:%d", svcdecl.AdminPort)] = true
					for _, p := range d.Ports {
						switch p.Exposure {
						case svcdecl.Public:
							wantIn[fmt.Sprintf("ingress-controller:%d", p.Port)] = true
						case svcdecl.Cluster:
							wantIn[fmt.Sprintf("%s-client:%d", name, p.Port)] = true
						}
					}
				}
				if w.Labels["b24hub.io/postgres-client"] == "true" {
					wantOut["postgres:5432"] = true
				}
				if w.Labels["b24hub.io/portal-client"] == "true" {
					wantOut["internet:443"] = true
				}
				if name == "ingress" && (wantOut["internet:443"] || wantOut["postgres:5432"]) {
					t.Errorf("%s %s: the ingress must not reach portals or PostgreSQL (thin hot path)", o, w)
				}
				if diff := setDiff(wantIn, a.in); diff != "" {
					t.Errorf("%s %s: inbound access %s", o, w, diff)
				}
				if diff := setDiff(wantOut, a.out); diff != "" {
					t.Errorf("%s %s: outbound access %s", o, w, diff)
				}
			}
		})
	}
}

func setDiff(want, got map[string]bool) string {
	var missing, extra []string
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) == 0 {
		return ""
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("differs: missing %v, not allowed %v (allowed now: %v)", missing, extra, strings.Join(slices.Sorted(maps.Keys(got)), " "))
}
