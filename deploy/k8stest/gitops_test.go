package k8stest

import (
	"slices"
	"strings"
	"testing"
)

// TestJobsRerunUnderGitOps: a release changes the Jobs' images, and Jobs are
// immutable, so without these annotations Argo CD and Flux fail the sync on
// the old Job until someone runs `kubectl delete job`. Argo CD must run each
// Job as a Sync (or PreSync) hook that deletes the previous run before
// creating the next; Flux must force-replace it; and finished Jobs must not
// stay for ever.
func TestJobsRerunUnderGitOps(t *testing.T) {
	for _, o := range overlays {
		r := render(t, o)
		if len(r.Jobs) == 0 {
			t.Fatalf("%s: no Jobs rendered", o)
		}
		for _, j := range r.Jobs {
			where := o + ": Job " + j.Name
			a := j.Annotations
			if h := a["argocd.argoproj.io/hook"]; h != "Sync" && h != "PreSync" {
				t.Errorf("%s: argocd.argoproj.io/hook = %q, want Sync (or PreSync)", where, h)
			}
			if p := strings.Split(a["argocd.argoproj.io/hook-delete-policy"], ","); !slices.Contains(p, "BeforeHookCreation") {
				t.Errorf("%s: argocd.argoproj.io/hook-delete-policy %q lacks BeforeHookCreation: the next sync would find the old Job", where, a["argocd.argoproj.io/hook-delete-policy"])
			}
			if f := a["kustomize.toolkit.fluxcd.io/force"]; f != "enabled" {
				t.Errorf("%s: kustomize.toolkit.fluxcd.io/force = %q, want enabled: Flux cannot patch an immutable Job", where, f)
			}
			if ttl := j.Spec.TTLSecondsAfterFinished; ttl == nil || *ttl <= 0 {
				t.Errorf("%s: no ttlSecondsAfterFinished: finished Jobs would stay and block the next plain kubectl apply", where)
			}
		}
	}
}
