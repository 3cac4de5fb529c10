package render_test

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/b24hub/b24hub/libs/svcdecl"
	"github.com/b24hub/b24hub/tools/render"
)

var migrations = fstest.MapFS{"001_init.sql": {Data: []byte("select 1")}}

// testCatalog has one service of each shape: an edge with a public port and
// a Secret file, an autoscaled consumer with a database and portals, and a
// singleton with a cluster port, a setting from the pod and a request it
// answers.
func testCatalog() svcdecl.Catalog {
	return svcdecl.Catalog{
		{
			Name: "edge", Summary: "Takes events | publishes them.", Role: svcdecl.RoleEdge,
			Publishes:   []string{"b24.events.>"},
			Buckets:     []svcdecl.Bucket{{Name: "B24_PORTALS", Access: svcdecl.Read}},
			Ports:       []svcdecl.Port{{Name: "http", Port: 8080, Exposure: svcdecl.Public, Env: "B24HUB_EDGE_ADDR"}},
			Scaling:     svcdecl.Scaling{MaxReplicas: 10},
			SecretFiles: []svcdecl.SecretFile{{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml"}},
		},
		{
			Name: "contacts", Summary: "Mirrors contacts.", Role: svcdecl.RoleConsumer,
			Consumers: []svcdecl.Consumer{
				{Durable: "contacts", Stream: "B24_EVENTS", FilterSubjects: []string{"b24.events.*.ONCRMCONTACTADD"}},
				{Durable: "contacts-cmd", Stream: "B24_COMMANDS", FilterSubjects: []string{"b24.commands.contacts.>", "b24.commands.all.>"}},
			},
			Publishes:    []string{"b24.outcomes.contacts.>"},
			Buckets:      []svcdecl.Bucket{{Name: "B24_RATELIMIT", Access: svcdecl.ReadWrite}},
			Database:     &svcdecl.Database{Schema: "contacts", Migrations: migrations},
			PortalClient: true,
		},
		{
			Name: "control", Summary: "Keeps bindings.", Role: svcdecl.RoleControl,
			Subscribes: []string{"b24.verify.>"},
			Database:   &svcdecl.Database{Schema: "control", Migrations: migrations},
			Ports:      []svcdecl.Port{{Name: "api", Port: 8081, Exposure: svcdecl.Cluster, Env: "B24HUB_CONTROL_ADDR"}},
			Env: []svcdecl.Env{
				{Name: "B24HUB_INSTANCE_ID", FieldPath: "metadata.name", Comment: "Lease holder identity: the pod name."},
				{Name: "B24HUB_HANDLER_URL", Value: "https://b24hub.example.com"},
			},
			MemoryLimit: "512Mi",
		},
		{
			Name: "watcher", Summary: "Watches outcomes.", Role: svcdecl.RoleObserver,
			Consumers: []svcdecl.Consumer{{Durable: "watcher", Stream: "B24_OUTCOMES", FilterSubjects: []string{"b24.outcomes.>"}}},
			Scaling:   svcdecl.Scaling{MinReplicas: 2, MaxReplicas: 2},
		},
	}
}

// testRepo holds the hand-written files Render fills fragments into and
// the modules the images need.
func testRepo() fstest.MapFS {
	gomod := func(path string, replaces ...string) *fstest.MapFile {
		s := "module github.com/b24hub/b24hub/" + path + "\n\ngo 1.26.0\n"
		for _, r := range replaces {
			s += "replace github.com/b24hub/b24hub/" + r + " => ../../" + r + "\n"
		}
		return &fstest.MapFile{Data: []byte(s)}
	}
	kust := "resources:\n  - common/networkpolicy.yaml\n  # generated:resources:begin\n  # generated:resources:end\n  - jobs/topology.yaml\nimages:\n  # generated:images:begin\n  # generated:images:end\n"
	overlay := func(tag string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("images:\n  # generated:images:begin\n  - {name: x, newTag: " + tag + "}\n  # generated:images:end\npatches: []\n")}
	}
	return fstest.MapFS{
		"services/edge/go.mod":                     gomod("services/edge", "libs/eventbus", "libs/buildinfo"),
		"services/edge/go.sum":                     {Data: []byte("")},
		"services/contacts/go.mod":                 gomod("services/contacts", "libs/eventbus", "libs/pgtest"),
		"services/watcher/go.mod":                  gomod("services/watcher"),
		"services/control/go.mod":                  gomod("services/control", "libs/eventbus"),
		"services/b24ctl/go.mod":                   gomod("services/b24ctl", "libs/eventbus"),
		"libs/eventbus/go.mod":                     gomod("libs/eventbus"),
		"libs/buildinfo/go.mod":                    gomod("libs/buildinfo"),
		"libs/pgtest/go.mod":                       gomod("libs/pgtest"),
		"services/contacts/README.md":              {Data: []byte("# contacts\n")},
		"k8s/base/kustomization.yaml":              {Data: []byte(kust)},
		"k8s/overlays/dev/kustomization.yaml":      overlay("dev"),
		"k8s/overlays/prod/kustomization.yaml":     overlay(`"0.1.0"`),
		"deploy/monitoring/grafana-dashboard.json": {Data: []byte(`{"expr": "x{job=~\"old|edge\"} + y{job=~\"nats.*\"}"}`)},
		"deploy/monitoring/prometheusrule.yaml":    {Data: []byte("expr: up{job=~\"contacts\"} == 0\n")},
		"README.md":                                {Data: []byte("# x\n<!-- generated:services:begin -->\nold\n<!-- generated:services:end -->\n")},
		"docs/deploy.md":                           {Data: []byte("<!-- generated:services:begin -->\n<!-- generated:services:end -->\n<!-- generated:images:begin -->\n<!-- generated:images:end -->\n<!-- generated:rollout:begin -->\n<!-- generated:rollout:end -->\n")},
		"deploy/nats/values.yaml":                  {Data: []byte("container:\n  env:\n    # generated:nkeys:begin\n    # generated:nkeys:end\n")},
	}
}

func renderMap(t *testing.T, repo fstest.MapFS, c svcdecl.Catalog) map[string]string {
	t.Helper()
	files, err := render.Render(repo, c)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		out[f.Path] = string(f.Data)
	}
	if os.Getenv("RENDER_TEST_DUMP") != "" {
		for p, d := range out {
			t.Logf("==== %s\n%s", p, d)
		}
	}
	return out
}

func TestRenderShapes(t *testing.T) {
	out := renderMap(t, testRepo(), testCatalog())
	for _, tt := range []struct {
		path     string
		contains []string
		lacks    []string
	}{
		{"k8s/base/edge/deployment.yaml", []string{
			"{name: http, containerPort: 8080, protocol: TCP}", "{name: admin, containerPort: 9090, protocol: TCP}",
			`{name: B24HUB_EDGE_ADDR, value: ":8080"}`, "{name: B24HUB_SHUTDOWN_TIMEOUT, value: 20s}",
			"{name: B24HUB_PORTALS_FILE, value: /etc/b24hub/portals/portals.yaml}",
			"secret: {secretName: b24hub-portals, defaultMode: 0440}", "{name: GOMEMLIMIT, value: 230MiB}",
			"maxSurge: 25%", "failureThreshold: 30",
		}, []string{"replicas:", "postgres-client", "portal-client", "B24HUB_DATABASE_URL", "b24hub-credentials"}},
		// A new service's NATS identity reaches the server's env with it.
		{"deploy/nats/values.yaml", []string{
			"    NKEY_CONTACTS:\n      valueFrom: {secretKeyRef: {name: nats-b24hub-users, key: contacts}}\n",
		}, nil},
		{"k8s/base/edge/hpa.yaml", []string{"minReplicas: 2", "maxReplicas: 10", "averageUtilization: 70"}, nil},
		{"k8s/base/contacts/deployment.yaml", []string{
			`b24hub.io/postgres-client: "true"`, `b24hub.io/portal-client: "true"`,
			"secretKeyRef: {name: b24-pg-app, key: uri}", "secretKeyRef: {name: b24hub-app, key: client_id}",
			"{name: B24HUB_CREDENTIALS_KEY_FILE, value: /etc/b24hub/credentials/key}",
			"failureThreshold: 60", "memory: 96Mi",
		}, nil},
		{"k8s/base/control/deployment.yaml", []string{
			"replicas: 2", "maxSurge: 1", "fieldRef: {fieldPath: metadata.name}", "# Lease holder identity: the pod name.",
			`{name: B24HUB_HANDLER_URL, value: "https://b24hub.example.com"}`, "{name: GOMEMLIMIT, value: 460MiB}",
			"limits: {memory: 512Mi", "memory: 192Mi",
		}, []string{"B24HUB_SHUTDOWN_TIMEOUT", "portal-client"}},
		{"k8s/base/watcher/deployment.yaml", []string{"replicas: 2", "A fixed 2 replicas (no autoscaler)"}, nil},
		{"k8s/base/control/service.yaml", []string{"{name: api, port: 8081, targetPort: api, protocol: TCP}", "{name: admin, port: 9090"}, nil},
		{"k8s/base/common/networkpolicy.yaml", []string{
			"name: b24hub-edge-from-controller", "name: b24hub-control-from-clients", "name: b24hub-metrics-from-prometheus", "kubernetes.io/metadata.name: ingress-nginx", "b24hub.io/control-client: \"true\"",
			"{protocol: TCP, port: api}",
		}, nil},
		{"k8s/base/jobs/migrate.yaml", []string{"name: b24hub-migrate-contacts", "name: b24hub-migrate-control", "image: b24hub/control"}, []string{"b24hub-migrate-edge"}},
		{"k8s/base/kustomization.yaml", []string{
			"  # generated:resources:begin\n  - edge/deployment.yaml\n", "  - jobs/migrate.yaml\n  # generated:resources:end\n  - jobs/topology.yaml",
			"  - name: b24hub/b24ctl\n    newName: ghcr.io/b24hub/b24hub/b24ctl\n",
		}, []string{"control/hpa.yaml"}},
		{"k8s/overlays/dev/kustomization.yaml", []string{"{name: ghcr.io/b24hub/b24hub/contacts, newTag: dev}", "patches: []"}, []string{"name: x,"}},
		{"k8s/overlays/prod/kustomization.yaml", []string{`{name: ghcr.io/b24hub/b24hub/b24ctl, newTag: "0.1.0"}`}, nil},
		{"k8s/components/monitoring/servicemonitors.yaml", []string{"name: control", "port: admin"}, nil},
		{"deploy/monitoring/grafana-dashboard.json", []string{`job=~\"edge|contacts|control|watcher\"`, `job=~\"nats.*\"`}, nil},
		{"deploy/monitoring/prometheusrule.yaml", []string{`job=~"edge|contacts|control|watcher"`}, nil},
		{"README.md", []string{"| `services/contacts` | consumer | Mirrors contacts. | `contacts` on `B24_EVENTS`, `contacts-cmd` on `B24_COMMANDS` | `contacts` | yes | [services/contacts/README.md](services/contacts/README.md) |", `Takes events \| publishes them.`}, []string{"old"}},
		{"docs/deploy.md", []string{"| `control` | 2, one active (lease) | api 8081 (cluster) |", "for s in edge contacts control watcher b24ctl; do", "for d in edge contacts control watcher; do", "| `watcher` | 2 (fixed) |"}, nil},
		{"deploy/docker/Dockerfile", []string{
			"COPY libs/pgtest/go.mod libs/pgtest/\n", "COPY libs/eventbus/ libs/eventbus/\n", "COPY services/b24ctl/ services/b24ctl/\n",
			"-X github.com/b24hub/b24hub/libs/buildinfo.version=${VERSION}", "FROM gcr.io/distroless/static-debian12:nonroot",
			`org.opencontainers.image.revision="${REVISION}"`, " edge contacts control watcher b24ctl ",
		}, []string{"COPY libs/pgtest/ "}},
		{"deploy/docker/Dockerfile.dockerignore", []string{"!libs/pgtest/go.mod\n", "!libs/eventbus/\n", "!services/edge/\n"}, []string{"!libs/pgtest/\n"}},
		{"deploy/nats/permissions.yaml", []string{
			"\"$JS.API.CONSUMER.CREATE.B24_EVENTS.contacts.>\"",
			"\"$JS.API.CONSUMER.CREATE.B24_COMMANDS.contacts-cmd\"", "\"$JS.ACK.B24_EVENTS.contacts.>\"",
			"\"$KV.B24_RATELIMIT.>\"", "\"_INBOX.contacts.>\"", "allow_responses: true",
		}, []string{"$KV.B24_PORTALS"}},
	} {
		got, ok := out[tt.path]
		if !ok {
			t.Errorf("%s not rendered", tt.path)
			continue
		}
		for _, want := range tt.contains {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %q", tt.path, want)
			}
		}
		for _, bad := range tt.lacks {
			if strings.Contains(got, bad) {
				t.Errorf("%s has %q", tt.path, bad)
			}
		}
	}
	for _, fixed := range []string{"control", "watcher"} {
		if _, ok := out["k8s/base/"+fixed+"/hpa.yaml"]; ok {
			t.Errorf("%s runs fixed replicas but got an HPA", fixed)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(fstest.MapFS, svcdecl.Catalog) svcdecl.Catalog
		want   string
	}{
		{"empty catalog", func(fstest.MapFS, svcdecl.Catalog) svcdecl.Catalog { return nil }, "empty"},
		{"invalid declaration", func(_ fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			c[0].Role = "worker"
			return c
		}, `role "worker"`},
		{"derived env declared again", func(_ fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			c[1].SecretFiles = []svcdecl.SecretFile{{Env: "B24HUB_PORTALS_FILE", Secret: "b24hub-portals", Key: "portals.yaml"}}
			return c
		}, "B24HUB_PORTALS_FILE is set twice"},
		{"missing marker", func(r fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			r["README.md"] = &fstest.MapFile{Data: []byte("# x\n")}
			return c
		}, `README.md: no "generated:services:begin" marker`},
		{"missing end marker", func(r fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			r["README.md"] = &fstest.MapFile{Data: []byte("<!-- generated:services:begin -->\n")}
			return c
		}, `no "generated:services:end" marker`},
		{"overlay with two tags", func(r fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			r["k8s/overlays/dev/kustomization.yaml"] = &fstest.MapFile{Data: []byte("# generated:images:begin\n- {name: a, newTag: x}\n- {name: b, newTag: y}\n# generated:images:end\n")}
			return c
		}, "several tags"},
		{"missing module", func(r fstest.MapFS, c svcdecl.Catalog) svcdecl.Catalog {
			delete(r, "libs/eventbus/go.mod")
			return c
		}, "module libs/eventbus"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			repo := testRepo()
			c := tt.change(repo, testCatalog())
			_, err := render.Render(repo, c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Render = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestStale: a rendered repository is clean; a changed, a missing and an
// obsolete generated file are each named.
func TestStale(t *testing.T) {
	repo := testRepo()
	files, err := render.Render(repo, testCatalog())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		repo[f.Path] = &fstest.MapFile{Data: f.Data}
	}
	if stale, err := render.Stale(repo, files); err != nil || len(stale) != 0 {
		t.Fatalf("Stale after writing = %v, %v; want none", stale, err)
	}
	repo["k8s/base/edge/pdb.yaml"].Data = []byte("edited by hand\n")
	delete(repo, "deploy/nats/permissions.yaml")
	repo["k8s/base/gone/deployment.yaml"] = &fstest.MapFile{Data: []byte("# Generated by `go tool task render` from x; do not edit.\n")}
	repo["k8s/base/edge/ingress.yaml"] = &fstest.MapFile{Data: []byte("# hand-written\n")}
	repo["deploy/docker/edge/Dockerfile"] = &fstest.MapFile{Data: []byte("FROM x\n")}
	stale, err := render.Stale(repo, files)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deploy/docker/edge/Dockerfile", "deploy/nats/permissions.yaml", "k8s/base/edge/pdb.yaml", "k8s/base/gone/deployment.yaml"}
	if strings.Join(stale, " ") != strings.Join(want, " ") {
		t.Fatalf("Stale = %v, want %v", stale, want)
	}
}

func TestYAMLValuesAreQuotedWhenNeeded(t *testing.T) {
	c := testCatalog()
	c[2].Env = append(c[2].Env, svcdecl.Env{Name: "B24HUB_FLAG", Value: "true"}, svcdecl.Env{Name: "B24HUB_N", Value: "10"}, svcdecl.Env{Name: "B24HUB_D", Value: "5s"})
	out := renderMap(t, testRepo(), c)["k8s/base/control/deployment.yaml"]
	for _, want := range []string{`{name: B24HUB_FLAG, value: "true"}`, `{name: B24HUB_N, value: "10"}`, `{name: B24HUB_D, value: 5s}`} {
		if !strings.Contains(out, want) {
			t.Errorf("deployment lacks %s", want)
		}
	}
}
