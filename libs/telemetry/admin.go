package telemetry

import (
	"context"
	"encoding/json"
	"net/http"
	"sync/atomic"
	"time"
)

// ReadyFunc reports whether a dependency is usable; nil means ready.
type ReadyFunc func(ctx context.Context) error

// Health tracks liveness and readiness for the admin endpoints. Mark it
// draining at shutdown so load balancers stop sending traffic before the
// server stops.
type Health struct {
	checks   map[string]ReadyFunc
	draining atomic.Bool
}

// NewHealth returns a Health that is ready when every check passes.
func NewHealth(checks map[string]ReadyFunc) *Health {
	return &Health{checks: checks}
}

// Drain makes /readyz fail from now on.
func (h *Health) Drain() { h.draining.Store(true) }

// Ready runs every check with a short timeout.
func (h *Health) Ready(ctx context.Context) map[string]string {
	out := map[string]string{}
	if h.draining.Load() {
		out["draining"] = "shutting down"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for name, check := range h.checks {
		if err := check(ctx); err != nil {
			out[name] = err.Error()
		}
	}
	return out
}

// Register adds /healthz (process alive; never checks dependencies), /readyz
// (every check passes) and, when metrics is not nil, /metrics to mux.
func (h *Health) Register(mux *http.ServeMux, metrics http.Handler) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if failed := h.Ready(r.Context()); len(failed) > 0 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failed": failed})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
