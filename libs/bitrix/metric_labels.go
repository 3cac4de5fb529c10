package bitrix

import (
	"strings"
	"sync"

	"github.com/b24hub/b24hub/libs/telemetry/labelcap"
	"go.opentelemetry.io/otel/metric"
)

// OtherLabel is the bitrix.method value of a method outside KnownMethods,
// and the bitrix.portal value of portals past MaxPortalLabels, so that the
// client's metrics stay bounded whatever callers pass. Spans and logs keep
// the real method and member_id.
const OtherLabel = labelcap.Other

// MaxPortalLabels is how many distinct portals get their own bitrix.portal
// label in one process (per meter provider); the ones seen later share
// OtherLabel. With KnownMethods it bounds the series of the
// portal × method histograms.
const MaxPortalLabels = labelcap.MaxPortals

// KnownMethods are the REST methods with their own bitrix.method label: the
// ones this package and the b24hub services call (lower case, as Bitrix24
// treats method names case-insensitively). A test keeps the list in step
// with the code; a method called through Call or Do that is not listed is
// counted as OtherLabel until it is added here.
var KnownMethods = []string{
	"app.info", "batch", "crm.deal.fields", "crm.deal.get", "crm.deal.list", "crm.deal.update",
	"disk.file.get", "event.bind", "event.get", "event.offline.clear", "event.offline.error",
	"event.offline.get", "event.offline.list", "event.test", "event.unbind", "feature.get",
	"method.get", "profile", "scope", "server.time", "task.checklistitem.getlist",
	"tasks.task.get", "tasks.task.list", "user.current", "voximplant.statistic.get",
}

var knownMethods = func() map[string]bool {
	m := make(map[string]bool, len(KnownMethods))
	for _, k := range KnownMethods {
		m[k] = true
	}
	return m
}()

// methodLabel is the bitrix.method metric label of method.
func methodLabel(method string) string {
	if m := strings.ToLower(method); knownMethods[m] {
		return m
	}
	return OtherLabel
}

// portalCaps holds one portal label cap per meter provider: clients are
// created per portal, and the bound is on what one provider exports.
var portalCaps sync.Map // metric.MeterProvider → *labelcap.Cap

func portalCapFor(mp metric.MeterProvider) *labelcap.Cap {
	if c, ok := portalCaps.Load(mp); ok {
		return c.(*labelcap.Cap)
	}
	c, _ := portalCaps.LoadOrStore(mp, labelcap.New(MaxPortalLabels))
	return c.(*labelcap.Cap)
}
