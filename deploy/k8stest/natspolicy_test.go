package k8stest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/b24hub/b24hub/services/catalog"
	rendertool "github.com/b24hub/b24hub/tools/render"

	networkingv1 "k8s.io/api/networking/v1"
)

// TestNATSServersPolicy: the NATS server pods are selected by a policy that
// admits clients (4222) only from b24hub pods and the chart's nats-box,
// routes and monitoring (6222, 8222) only from the NATS peers, and the
// exporter (7777) from Prometheus, so no other pod in the cluster reaches
// the bus, whatever its credentials.
func TestNATSServersPolicy(t *testing.T) {
	server := map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats", "app.kubernetes.io/instance": "nats"}
	peers := map[string]map[string]string{
		"b24hub":     {"app.kubernetes.io/part-of": "b24hub", "app.kubernetes.io/name": "deal-sync"},
		"nats-box":   {"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats-box"},
		"nats":       server,
		"other-pod":  {"app.kubernetes.io/name": "someone-else"},
		"other-nats": {"app.kubernetes.io/name": "nats-lookalike", "app.kubernetes.io/component": "nats"},
	}
	want := map[string]bool{"b24hub:4222": true, "nats-box:4222": true, "nats:4222": true, "nats:6222": true, "nats:8222": true, "prometheus:7777": true}
	for _, o := range overlays {
		r := render(t, o)
		t.Run(o, func(t *testing.T) {
			got := map[string]bool{}
			var selected bool
			for _, np := range r.NetPols {
				if !matches(&np.Spec.PodSelector, server) {
					continue
				}
				selected = selected || slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
				for i, rule := range np.Spec.Ingress {
					if len(rule.From) == 0 || len(rule.Ports) == 0 {
						t.Errorf("%s ingress rule %d admits every source or port", np.Name, i)
					}
					for _, from := range rule.From {
						var who []string
						switch {
						case from.IPBlock != nil:
							t.Errorf("%s ingress rule %d admits an IP block", np.Name, i)
						case from.NamespaceSelector != nil && from.PodSelector == nil && nsName(from.NamespaceSelector) == prometheusNS:
							who = []string{"prometheus"}
						case from.NamespaceSelector != nil:
							t.Errorf("%s ingress rule %d admits namespace %v", np.Name, i, from.NamespaceSelector)
						default:
							for name, l := range peers {
								if matches(from.PodSelector, l) {
									who = append(who, name)
								}
							}
						}
						for _, w := range who {
							for _, p := range rule.Ports {
								got[fmt.Sprintf("%s:%d", w, p.Port.IntVal)] = true
							}
						}
					}
				}
			}
			if !selected {
				t.Fatal("no NetworkPolicy restricts ingress to the NATS server pods")
			}
			if diff := setDiff(want, got); diff != "" {
				t.Errorf("NATS server access %s", diff)
			}
		})
	}
}

// TestNATSValuesSecureTheBus: the chart values turn on TLS for clients and
// routes, include the generated authorization (deploy/nats/auth.conf, one
// nkey user per identity) and give the server every identity's public key,
// so the servers run with exactly the users deploy/nats/permissions.yaml
// lists and no anonymous access.
func TestNATSValuesSecureTheBus(t *testing.T) {
	v := loadNATSValues(t)
	if !v.Config.NATS.TLS.Enabled || v.Config.NATS.TLS.SecretName == "" {
		t.Error("client TLS (config.nats.tls) is off")
	}
	if !v.Config.Cluster.TLS.Enabled || v.Config.Cluster.TLS.SecretName == "" {
		t.Error("route TLS (config.cluster.tls) is off")
	}
	if v.Config.Merge["$include"] != "../nats-b24hub-auth/auth.conf" {
		t.Errorf("config.merge does not include the generated auth.conf: %v", v.Config.Merge)
	}
	auth := string(readFile(t, "deploy/nats/auth.conf"))
	for _, p := range catalog.Identities() {
		name := rendertool.NKeyVar(p.User)
		if !strings.Contains(auth, "nkey: $"+name+"\n") {
			t.Errorf("auth.conf has no user %s", p.User)
		}
		ref, _ := v.Container.Env[name].(map[string]any)
		if ref == nil {
			t.Errorf("container.env has no %s (the public key of %s)", name, p.User)
		}
	}
	var mounted bool
	for _, p := range v.Container.Patch {
		if val, ok := p["value"].(map[string]any); ok && val["mountPath"] == "/etc/nats-b24hub-auth" {
			mounted = true
		}
	}
	if !mounted {
		t.Error("auth.conf's ConfigMap is not mounted at /etc/nats-b24hub-auth")
	}
	prod := string(readFile(t, "k8s/overlays/prod/kustomization.yaml"))
	if !strings.Contains(prod, "B24HUB_NATS_URL=tls://") || !strings.Contains(prod, "B24HUB_NATS_TLS_CA=") {
		t.Error("the prod overlay does not connect to NATS over TLS with the CA")
	}
}
