package fakeportal

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ScenarioRequest is the body of POST /_fake/scenario: optionally register
// an outgoing webhook to Handler (member_id is the portal's), then run the
// scenario.
type ScenarioRequest struct {
	// Scenario is "name" or "name:count", see ParseScenario; Count
	// overrides the count when set.
	Scenario string `json:"scenario"`
	Count    int    `json:"count,omitempty"` // see Scenario
	// Fields are deal fields the scenario sets.
	Fields map[string]string `json:"fields,omitempty"`
	// Handler, if set, receives the scenario's events as an outgoing
	// webhook with ApplicationToken (generated when empty), for Events
	// (default: the deal events); it is removed after the scenario.
	Handler          string   `json:"handler,omitempty"`
	ApplicationToken string   `json:"application_token,omitempty"` // see Handler
	Events           []string `json:"events,omitempty"`            // see Handler
}

// serveControl is the test/CLI control API:
//
//	GET  /_fake/stats                   counters (Stats)
//	GET  /_fake/deliveries              every push (Delivery)
//	POST /_fake/scenario                run a ScenarioRequest
//	POST /_fake/install                 install an App, answer its Install
//	POST /_fake/uninstall?client_id=x   uninstall an app (UninstallApp)
//	POST /_fake/webhook?user=1&code=x   add an incoming webhook, answer its URL
//	POST /_fake/expire-tokens           expire every access token
//	GET  /_fake/disk/{id}/download      a Disk file's content (DOWNLOAD_URL)
func (p *Portal) serveControl(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/_fake/")
	switch {
	case path == "stats" && r.Method == http.MethodGet:
		writeJSON(w, 200, p.Stats())
	case path == "deliveries" && r.Method == http.MethodGet:
		writeJSON(w, 200, p.Deliveries())
	case path == "scenario" && r.Method == http.MethodPost:
		var req ScenarioRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		ids, hid, err := p.runScenarioRequest(req)
		if err != nil {
			writeJSON(w, 400, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, 200, map[string]any{"ids": ids, "handler_id": hid, "member_id": p.cfg.MemberID})
	case path == "install" && r.Method == http.MethodPost:
		var a App
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || a.ClientID == "" {
			writeJSON(w, 400, map[string]string{"error": "body must be an App with ClientID"})
			return
		}
		writeJSON(w, 200, p.InstallApp(a))
	case path == "uninstall" && r.Method == http.MethodPost:
		id := r.URL.Query().Get("client_id")
		if id == "" {
			writeJSON(w, 400, map[string]string{"error": "client_id is required"})
			return
		}
		if !p.UninstallApp(id) {
			writeJSON(w, 404, map[string]string{"error": "no such app"})
			return
		}
		writeJSON(w, 200, map[string]bool{"ok": true})
	case path == "webhook" && r.Method == http.MethodPost:
		user, _ := strconv.ParseInt(r.URL.Query().Get("user"), 10, 64)
		code := r.URL.Query().Get("code")
		if user == 0 || code == "" {
			writeJSON(w, 400, map[string]string{"error": "user and code are required"})
			return
		}
		writeJSON(w, 200, map[string]string{"url": p.AddWebhook(user, code)})
	case path == "expire-tokens" && r.Method == http.MethodPost:
		p.ExpireTokens()
		writeJSON(w, 200, map[string]bool{"ok": true})
	case strings.HasPrefix(path, "disk/") && strings.HasSuffix(path, "/download"):
		id, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(path, "disk/"), "/download"), 10, 64)
		p.mu.Lock()
		f := p.files[id]
		p.mu.Unlock()
		if f == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "audio/mpeg")
		w.Header().Set("Content-Disposition", `attachment; filename="`+f.name+`"`)
		_, _ = w.Write(f.content)
	default:
		http.NotFound(w, r)
	}
}

func (p *Portal) runScenarioRequest(req ScenarioRequest) ([]int64, int64, error) {
	sc, err := ParseScenario(req.Scenario)
	if err != nil {
		return nil, 0, err
	}
	if req.Count > 0 {
		sc.Count = req.Count
	}
	sc.Fields = req.Fields
	var hid int64
	if req.Handler != "" {
		hid, _ = p.AddOutgoingWebhook(OutgoingWebhook{Handler: req.Handler, ApplicationToken: req.ApplicationToken, Events: req.Events})
		defer p.removeHandler(hid)
	}
	ids, err := p.RunScenario(sc)
	return ids, hid, err
}

// removeHandler drops a handler after its scenario's pushes are queued; the
// queued pushes are still sent.
func (p *Portal) removeHandler(id int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.handlers[:0]
	for _, h := range p.handlers {
		if h.id != id {
			kept = append(kept, h)
		}
	}
	p.handlers = kept
}
