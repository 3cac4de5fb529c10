package k8stest

import (
	"os"
	"testing"

	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/services/catalog"
	gen "github.com/b24hub/b24hub/tools/render"
)

// TestGeneratedFilesUpToDate: every file that derives from the service
// declarations (manifests, Dockerfile, docs tables, job lists, NATS
// permissions) is exactly what tools/render makes of services/catalog
// today, and no generated file of a removed service is left behind.
func TestGeneratedFilesUpToDate(t *testing.T) {
	repo := os.DirFS(repoRoot)
	files, err := gen.Render(repo, catalog.All)
	if err != nil {
		t.Fatal(err)
	}
	stale, err := gen.Stale(repo, files)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range stale {
		t.Errorf("%s is stale: it differs from what the service declarations generate (or should not exist any more); run `%s` and commit the result (never edit a generated file by hand)", p, gen.Command)
	}
}

// deployedService is what the policy tests need to know about a service,
// taken from its declaration.
type deployedService struct {
	Name string
	// Scaling is "hpa" when an autoscaler owns the replicas, "lease" when
	// the Deployment runs a fixed count and a lease elects the active one.
	Scaling  string
	Postgres bool
	Portals  bool // calls Bitrix24 portals over HTTPS
	Decl     svcdecl.Service
}

// services are the deployed services, from their declarations.
var services = func() []deployedService {
	var out []deployedService
	for _, s := range catalog.All {
		d := s.WithDefaults()
		scaling := "hpa"
		if d.Scaling.Singleton || d.Scaling.MaxReplicas <= d.Scaling.MinReplicas {
			scaling = "lease"
		}
		out = append(out, deployedService{Name: s.Name, Scaling: scaling, Postgres: s.Database != nil, Portals: s.PortalClient, Decl: d})
	}
	return out
}()

// imageServices are the modules that ship as container images: every
// declared service and b24ctl (the topology Job).
var imageServices = func() []string {
	var out []string
	for _, s := range catalog.All {
		out = append(out, s.Name)
	}
	return append(out, "b24ctl")
}()

// declared returns the declaration of the service named name.
func declared(t *testing.T, name string) svcdecl.Service {
	t.Helper()
	s, ok := catalog.All.Lookup(name)
	if !ok {
		t.Fatalf("no service %q in services/catalog", name)
	}
	return s
}
