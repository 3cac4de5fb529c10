package k8stest

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// reservedConnections are PostgreSQL connections the manifests do not
// show: superuser_reserved_connections (3 by default), CloudNativePG's
// instance manager and metrics exporter, and an operator's psql session.
const reservedConnections = 10

// defaultPoolSize reads postgres.DefaultMaxConns from libs/postgres, the
// pool size of a process whose manifest does not set
// B24HUB_DATABASE_MAX_CONNS.
func defaultPoolSize(t *testing.T) int {
	t.Helper()
	p := filepath.Join(repoRoot, "libs", "postgres", "postgres.go")
	f, err := parser.ParseFile(token.NewFileSet(), p, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != "DefaultMaxConns" || i >= len(vs.Values) {
					continue
				}
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					if v, err := strconv.Atoi(lit.Value); err == nil {
						return v
					}
				}
			}
		}
	}
	t.Fatalf("%s: no integer constant DefaultMaxConns", p)
	return 0
}

// poolSize is the pool size of a pod template's PostgreSQL clients: the
// largest B24HUB_DATABASE_MAX_CONNS of its containers that read
// B24HUB_DATABASE_URL, else def for each; 0 when none connects.
func poolSize(spec corev1.PodSpec, def int) (int, error) {
	total := 0
	for _, c := range spec.Containers {
		uses, size := false, def
		for _, e := range c.Env {
			switch e.Name {
			case "B24HUB_DATABASE_URL":
				uses = true
			case "B24HUB_DATABASE_MAX_CONNS":
				n, err := strconv.Atoi(strings.TrimSpace(e.Value))
				if err != nil || n < 1 {
					return 0, fmt.Errorf("container %s: B24HUB_DATABASE_MAX_CONNS %q is not a literal positive number", c.Name, e.Value)
				}
				size = n
			}
		}
		if uses {
			total += size
		}
	}
	return total, nil
}

// maxPods is the most pods a Deployment runs: its autoscaler's maximum (or
// its replicas) plus the rolling update's surge.
func maxPods(d *appsv1.Deployment, hpas []*autoscalingv2.HorizontalPodAutoscaler) (int, error) {
	n := int(ptr.Deref(d.Spec.Replicas, 1))
	for _, h := range hpas {
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == d.Name {
			n = int(h.Spec.MaxReplicas)
		}
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return n, nil
	}
	surge := intstr.FromString("25%")
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	extra, err := intstr.GetScaledValueFromIntOrPercent(&surge, n, true)
	if err != nil {
		return 0, fmt.Errorf("maxSurge: %w", err)
	}
	return n + extra, nil
}

// connectionBudget adds up the PostgreSQL connections a rendered overlay can
// open at its largest: every Deployment at its autoscaler's maximum during a
// rollout, and every Job's pods at once.
func connectionBudget(deps []*appsv1.Deployment, hpas []*autoscalingv2.HorizontalPodAutoscaler, jobs []*batchv1.Job, def int) (int, []string, error) {
	total := reservedConnections
	lines := []string{fmt.Sprintf("reserved %d", reservedConnections)}
	for _, d := range deps {
		size, err := poolSize(d.Spec.Template.Spec, def)
		if err != nil {
			return 0, nil, fmt.Errorf("Deployment %s: %w", d.Name, err)
		}
		if size == 0 {
			continue
		}
		pods, err := maxPods(d, hpas)
		if err != nil {
			return 0, nil, fmt.Errorf("Deployment %s: %w", d.Name, err)
		}
		total += pods * size
		lines = append(lines, fmt.Sprintf("Deployment %s: %d pods x %d = %d", d.Name, pods, size, pods*size))
	}
	for _, j := range jobs {
		size, err := poolSize(j.Spec.Template.Spec, def)
		if err != nil {
			return 0, nil, fmt.Errorf("Job %s: %w", j.Name, err)
		}
		if size == 0 {
			continue
		}
		pods := int(ptr.Deref(j.Spec.Parallelism, 1))
		total += pods * size
		lines = append(lines, fmt.Sprintf("Job %s: %d pods x %d = %d", j.Name, pods, size, pods*size))
	}
	return total, lines, nil
}

// TestPostgresConnectionBudget: the connections every overlay can open at
// its largest fit the CloudNativePG cluster's max_connections.
func TestPostgresConnectionBudget(t *testing.T) {
	c, _ := loadPostgres(t)
	limit, err := strconv.Atoi(c.Spec.PostgreSQL.Parameters["max_connections"])
	if err != nil {
		t.Fatalf("deploy/postgres/cluster.yaml: max_connections %q: %v", c.Spec.PostgreSQL.Parameters["max_connections"], err)
	}
	def := defaultPoolSize(t)
	for _, o := range overlays {
		r := render(t, o)
		total, lines, err := connectionBudget(r.Deployments, r.HPAs, r.Jobs, def)
		if err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		if len(lines) < 3 {
			t.Fatalf("%s: only %v connect to PostgreSQL: the scan is broken", o, lines)
		}
		t.Logf("%s: %d of max_connections %d:\n  %s", o, total, limit, strings.Join(lines, "\n  "))
		if total > limit {
			t.Errorf("%s can open %d PostgreSQL connections, over max_connections %d in deploy/postgres/cluster.yaml; lower B24HUB_DATABASE_MAX_CONNS or maxReplicas, or raise max_connections:\n  %s",
				o, total, limit, strings.Join(lines, "\n  "))
		}
	}
}

// TestConnectionBudgetArithmetic: the budget counts autoscaler maxima,
// surge, per-container settings and Jobs, so a manifest change that would
// exceed the cluster is caught.
func TestConnectionBudgetArithmetic(t *testing.T) {
	db := corev1.EnvVar{Name: "B24HUB_DATABASE_URL", Value: "postgres://x"}
	pod := func(env ...corev1.EnvVar) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: env}}}}
	}
	dep := func(name string, replicas int32, surge *intstr.IntOrString, env ...corev1.EnvVar) *appsv1.Deployment {
		d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: &replicas, Template: pod(env...)}}
		d.Name = name
		if surge != nil {
			d.Spec.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{MaxSurge: surge}
		}
		return d
	}
	hpa := func(target string, max int32) *autoscalingv2.HorizontalPodAutoscaler {
		return &autoscalingv2.HorizontalPodAutoscaler{Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: "Deployment", Name: target}, MaxReplicas: max}}
	}
	one := intstr.FromInt32(1)
	job := &batchv1.Job{Spec: batchv1.JobSpec{Template: pod(db)}}
	job.Name = "migrate"
	for _, tc := range []struct {
		name string
		deps []*appsv1.Deployment
		hpas []*autoscalingv2.HorizontalPodAutoscaler
		jobs []*batchv1.Job
		want int
	}{
		{"no database", []*appsv1.Deployment{dep("ingress", 3, nil)}, nil, nil, reservedConnections},
		{"replicas and default surge", []*appsv1.Deployment{dep("a", 4, nil, db)}, nil, nil, reservedConnections + (4+1)*5},
		{"autoscaler maximum", []*appsv1.Deployment{dep("a", 2, &one, db)}, []*autoscalingv2.HorizontalPodAutoscaler{hpa("a", 22)}, nil, reservedConnections + 23*5},
		{"setting in the manifest", []*appsv1.Deployment{dep("a", 2, &one, db, corev1.EnvVar{Name: "B24HUB_DATABASE_MAX_CONNS", Value: "16"})}, nil, nil, reservedConnections + 3*16},
		{"jobs", nil, nil, []*batchv1.Job{job}, reservedConnections + 5},
	} {
		got, lines, err := connectionBudget(tc.deps, tc.hpas, tc.jobs, 5)
		if err != nil || got != tc.want {
			t.Errorf("%s: %d (%v), want %d; %v", tc.name, got, err, tc.want, lines)
		}
	}
	bad := dep("a", 1, nil, db, corev1.EnvVar{Name: "B24HUB_DATABASE_MAX_CONNS", Value: "lots"})
	if _, _, err := connectionBudget([]*appsv1.Deployment{bad}, nil, nil, 5); err == nil {
		t.Error("a non-numeric B24HUB_DATABASE_MAX_CONNS was accepted")
	}
}
