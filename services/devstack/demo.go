package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/fakeportal"
)

// demoPortal is the portal the local stack creates when no portals file is
// configured, so a new user can post an event straight away. Its identity
// (member id, application token) is kept in the data dir across restarts;
// its REST side is an embedded fake Bitrix24.
type demoPortal struct {
	File     string `json:"-"`
	MemberID string `json:"member_id"`
	Token    string `json:"application_token"`
	Domain   string `json:"-"`
}

func loadDemoPortal(dataDir string) (*demoPortal, error) {
	path := filepath.Join(dataDir, "demo-portal.json")
	d := &demoPortal{}
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, d) == nil && d.MemberID != "" && d.Token != "" {
		d.File = filepath.Join(dataDir, "demo-portals.yaml")
		return d, nil
	}
	d = &demoPortal{MemberID: randomHex(16), Token: randomHex(16), File: filepath.Join(dataDir, "demo-portals.yaml")}
	b, _ := json.Marshal(d)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return d, nil
}

// startDemoFake starts the fake Bitrix24 behind the demo portal, with a few
// deals (759 is the one the printed curl names), a task and a checklist.
func startDemoFake(addr string, d *demoPortal) (*fakeportal.Portal, error) {
	fake, err := fakeportal.New(fakeportal.Config{Addr: listenFree(addr), MemberID: d.MemberID})
	if err != nil {
		return nil, fmt.Errorf("fake Bitrix24: %w", err)
	}
	for i := 1; i <= 760; i++ {
		fake.CreateDeal(map[string]string{"TITLE": "Demo deal " + strconv.Itoa(i), "STAGE_ID": "NEW",
			"OPPORTUNITY": strconv.Itoa(1000 + i), "CURRENCY_ID": "EUR", "UF_CRM_SOURCE": "demo"}, false)
	}
	d.Domain = fake.Domain()
	return fake, nil
}

// writePortalsFile points the demo portal's REST calls at the fake through
// an incoming webhook.
func (d *demoPortal) writePortalsFile(fake *fakeportal.Portal) error {
	hook := fake.AddWebhook(1, randomHex(8))
	yaml := fmt.Sprintf("# Written by the local stack at every start: the demo portal, served by an\n# embedded fake Bitrix24. Point B24HUB_PORTALS_FILE at your own file instead.\nportals:\n  - member_id: %s\n    application_token: %s\n    domain: %s\n    webhook_url: %s\n",
		d.MemberID, d.Token, d.Domain, hook)
	return os.WriteFile(d.File, []byte(yaml), 0o600)
}

// connect makes the fake push deal, contact, task and call events to the ingress
// like an outgoing webhook.
func (d *demoPortal) connect(fake *fakeportal.Portal, ingressURL string) {
	fake.AddOutgoingWebhook(fakeportal.OutgoingWebhook{
		Handler: ingressURL, ApplicationToken: d.Token,
		Events: []string{"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMDEALDELETE", "ONCRMCONTACTADD", "ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE", "ONVOXIMPLANTCALLEND"},
	})
}

// DealUpdateBody is a real ONCRMDEALUPDATE body as Bitrix24 sends it (form
// encoded, PHP brackets, the field order of the documented example).
func (d *demoPortal) DealUpdateBody(dealID string, ts int64) string {
	return "event=ONCRMDEALUPDATE&event_handler_id=201&data%5BFIELDS%5D%5BID%5D=" + dealID +
		"&ts=" + strconv.FormatInt(ts, 10) +
		"&auth%5Baccess_token%5D=s6p6eclrvim6da22ft9ch94ekreb52lv&auth%5Bexpires_in%5D=3600&auth%5Bscope%5D=crm" +
		"&auth%5Bdomain%5D=" + d.Domain +
		"&auth%5Bserver_endpoint%5D=https%3A%2F%2Foauth.bitrix.info%2Frest%2F&auth%5Bstatus%5D=F" +
		"&auth%5Bclient_endpoint%5D=http%3A%2F%2F" + d.Domain + "%2Frest%2F" +
		"&auth%5Bmember_id%5D=" + d.MemberID +
		"&auth%5Brefresh_token%5D=4s386p3q0tr8dy89xvmt96234v3dljg8" +
		"&auth%5Bapplication_token%5D=" + d.Token
}

// Curl is a ready-to-paste command posting DealUpdateBody.
func (d *demoPortal) Curl(ingressURL string) string {
	return fmt.Sprintf("curl -sS -X POST %s/bitrix24/events -H 'Content-Type: application/x-www-form-urlencoded' --data '%s'",
		ingressURL, d.DealUpdateBody("759", time.Now().Unix()))
}
