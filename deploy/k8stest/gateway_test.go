package k8stest

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// gatewayNS is the namespace the component assumes the Gateway and its
// proxies run in (k8s/components/gateway-api).
const gatewayNS = "gateway-system"

// TestGatewayAPIRoute renders the prod overlay with the gateway-api
// component, as docs/deploy.md tells a cluster without ingress-nginx to, and
// checks the HTTPRoute against the Gateway API types (strictly: an unknown or
// misspelt field fails) and against the rest of the manifests.
func TestGatewayAPIRoute(t *testing.T) {
	// The prod overlay with the component added to its components, as
	// docs/deploy.md says; kustomize takes relative paths only, so the copy
	// lives for the test beside the real overlays.
	var k map[string]any
	if err := yaml.Unmarshal(readFile(t, "k8s/overlays/prod/kustomization.yaml"), &k); err != nil {
		t.Fatal(err)
	}
	comps, _ := k["components"].([]any)
	k["components"] = append(comps, "../../components/gateway-api")
	kb, err := yaml.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(filepath.Join(repoRoot, "k8s", "overlays"), ".gateway-api-check-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), kb, 0o644); err != nil {
		t.Fatal(err)
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build prod + components/gateway-api: %v", err)
	}

	prod := render(t, "prod")
	var (
		routes   []gatewayv1.HTTPRoute
		ingress  int
		netpol   *networkingv1.NetworkPolicy
		services = map[string]*corev1.Service{}
	)
	for _, s := range prod.Services {
		services[s.Name] = s
	}
	for _, res := range resMap.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		switch res.GetKind() {
		case "HTTPRoute":
			var r gatewayv1.HTTPRoute
			if err := yaml.UnmarshalStrict(y, &r); err != nil {
				t.Fatalf("HTTPRoute %s: %v", res.GetName(), err)
			}
			routes = append(routes, r)
		case "Ingress":
			ingress++
		case "NetworkPolicy":
			if res.GetName() == "b24hub-ingress-from-controller" {
				netpol = &networkingv1.NetworkPolicy{}
				if err := yaml.UnmarshalStrict(y, netpol); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if ingress != 0 {
		t.Errorf("%d Ingress objects left beside the HTTPRoute: the component must remove b24hub-events", ingress)
	}
	if len(routes) != 1 {
		t.Fatalf("%d HTTPRoutes, want 1", len(routes))
	}
	r := routes[0]
	if r.APIVersion != "gateway.networking.k8s.io/v1" || r.Namespace != prod.Namespace {
		t.Errorf("HTTPRoute %s: apiVersion %q in namespace %q, want gateway.networking.k8s.io/v1 in %q", r.Name, r.APIVersion, r.Namespace, prod.Namespace)
	}

	if len(r.Spec.ParentRefs) == 0 {
		t.Fatalf("HTTPRoute %s: no parentRefs", r.Name)
	}
	for _, p := range r.Spec.ParentRefs {
		if p.Name == "" || p.SectionName == nil || *p.SectionName == "" {
			t.Errorf("HTTPRoute %s: parentRef %+v must name the Gateway and its HTTPS listener (sectionName): a route on every listener would serve plain HTTP too", r.Name, p)
		}
		if p.Kind != nil && *p.Kind != "Gateway" {
			t.Errorf("HTTPRoute %s: parentRef kind %q, want Gateway", r.Name, *p.Kind)
		}
	}

	// The host is the one Bitrix24 handlers are bound to.
	var handler string
	for _, d := range prod.Deployments {
		if d.Name == "subscriptions" {
			for _, e := range d.Spec.Template.Spec.Containers[0].Env {
				if e.Name == "B24HUB_HANDLER_URL" {
					handler = e.Value
				}
			}
		}
	}
	u, err := url.Parse(handler)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		t.Fatalf("prod: subscriptions B24HUB_HANDLER_URL %q is not an https URL", handler)
	}
	if len(r.Spec.Hostnames) != 1 || string(r.Spec.Hostnames[0]) != u.Host {
		t.Errorf("HTTPRoute %s: hostnames %v, want [%s] (the host of B24HUB_HANDLER_URL)", r.Name, r.Spec.Hostnames, u.Host)
	}

	// The route matches exactly what the Ingress routes, POST only.
	if len(prod.Ingresses) != 1 {
		t.Fatalf("prod: %d Ingresses, want the one the route replaces", len(prod.Ingresses))
	}
	var want []string
	for _, ir := range prod.Ingresses[0].Spec.Rules {
		for _, p := range ir.HTTP.Paths {
			typ := map[networkingv1.PathType]gatewayv1.PathMatchType{
				networkingv1.PathTypePrefix: gatewayv1.PathMatchPathPrefix,
				networkingv1.PathTypeExact:  gatewayv1.PathMatchExact,
			}[*p.PathType]
			want = append(want, string(typ)+" "+p.Path)
		}
	}
	if len(r.Spec.Rules) != 1 {
		t.Fatalf("HTTPRoute %s: %d rules, want 1", r.Name, len(r.Spec.Rules))
	}
	rule := r.Spec.Rules[0]
	var got []string
	for _, m := range rule.Matches {
		if m.Path == nil || m.Path.Type == nil || m.Path.Value == nil {
			t.Errorf("HTTPRoute %s: match %+v without a path: it would route everything", r.Name, m)
			continue
		}
		got = append(got, string(*m.Path.Type)+" "+*m.Path.Value)
		if m.Method == nil || *m.Method != gatewayv1.HTTPMethodPost {
			t.Errorf("HTTPRoute %s: %s %s: method %v, want POST (events are only ever POSTed)", r.Name, *m.Path.Type, *m.Path.Value, m.Method)
		}
		if len(m.Headers) != 0 || len(m.QueryParams) != 0 {
			t.Errorf("HTTPRoute %s: header or query matches would drop some senders' events", r.Name)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("HTTPRoute %s matches %v, the Ingress routes %v: keep them the same", r.Name, got, want)
	}
	if len(rule.BackendRefs) != 1 {
		t.Fatalf("HTTPRoute %s: %d backendRefs, want 1", r.Name, len(rule.BackendRefs))
	}
	b := rule.BackendRefs[0]
	svc := services[string(b.Name)]
	switch {
	case b.Kind != nil && *b.Kind != "Service", b.Namespace != nil && string(*b.Namespace) != prod.Namespace:
		t.Errorf("HTTPRoute %s: backend %+v, want the ingress Service in its own namespace", r.Name, b.BackendObjectReference)
	case svc == nil || svc.Labels["app.kubernetes.io/name"] != "ingress":
		t.Errorf("HTTPRoute %s: backend Service %q is not the ingress service", r.Name, b.Name)
	case b.Port == nil || !slices.ContainsFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool { return p.Port == int32(*b.Port) }):
		t.Errorf("HTTPRoute %s: backend port %v is not a port of Service %s", r.Name, b.Port, svc.Name)
	}
	if rule.Timeouts == nil || rule.Timeouts.Request == nil {
		t.Errorf("HTTPRoute %s: no request timeout", r.Name)
	}

	// The Gateway's proxies, not ingress-nginx, may reach the ingress pods.
	if netpol == nil || len(netpol.Spec.Ingress) != 1 || len(netpol.Spec.Ingress[0].From) != 1 || netpol.Spec.Ingress[0].From[0].NamespaceSelector == nil {
		t.Fatalf("NetworkPolicy b24hub-ingress-from-controller: missing or not one namespace peer: %+v", netpol)
	}
	if ns := netpol.Spec.Ingress[0].From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"]; ns != gatewayNS {
		t.Errorf("NetworkPolicy b24hub-ingress-from-controller admits namespace %q, want the Gateway's %q", ns, gatewayNS)
	}
	for _, p := range r.Spec.ParentRefs {
		if p.Namespace == nil || string(*p.Namespace) != gatewayNS {
			t.Errorf("HTTPRoute %s: parentRef namespace %v, want %q (the namespace the NetworkPolicy admits)", r.Name, p.Namespace, gatewayNS)
		}
	}
}
