package fakeportal

// methodFunc executes one REST method. It runs with p.mu held; events go to
// c.fire and are sent after the lock is released.
type methodFunc func(p *Portal, c *call) (any, *page, *apiError)

// restMethods are the served methods, by lower-case name.
var restMethods = map[string]methodFunc{
	"crm.deal.get":               crmDealGet,
	"crm.deal.list":              crmDealList,
	"crm.deal.add":               crmDealAdd,
	"crm.deal.update":            crmDealUpdate,
	"crm.deal.delete":            crmDealDelete,
	"crm.deal.fields":            crmDealFields,
	"crm.contact.get":            crmContactGet,
	"tasks.task.get":             tasksTaskGet,
	"tasks.task.list":            tasksTaskList,
	"task.checklistitem.getlist": taskChecklistGetList,
	"voximplant.statistic.get":   voximplantStatisticGet,
	"disk.file.get":              diskFileGet,
	"event.bind":                 eventBind,
	"event.get":                  eventGet,
	"event.unbind":               eventUnbind,
	"event.test":                 eventTest,
	"event.offline.get":          eventOfflineGet,
	"event.offline.clear":        eventOfflineClear,
	"event.offline.error":        eventOfflineError,
	"event.offline.list":         eventOfflineList,
	"app.info":                   appInfo,
	"feature.get":                featureGet,
}

// appInfo answers for OAuth callers only; INSTALLED is false until the
// install finishes (§1.5).
func appInfo(_ *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	a := c.who.app
	return map[string]any{
		"ID": 1, "CODE": a.Code, "VERSION": a.Version, "STATUS": a.Status, "INSTALLED": !a.NotInstalled,
		"PAYMENT_EXPIRED": "N", "DAYS": nil, "LANGUAGE_ID": "en", "LICENSE": "en_project",
		"LICENSE_TYPE": "project", "LICENSE_FAMILY": "project",
	}, nil, nil
}

func featureGet(p *Portal, c *call) (any, *page, *apiError) {
	code := c.params.str("CODE")
	if code == "" {
		return nil, nil, errf(400, "INVALID_ARG_VALUE", "CODE is required")
	}
	return map[string]any{"value": yn(p.cfg.Features[code])}, nil, nil
}
