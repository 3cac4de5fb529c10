package fakeportal

import (
	"crypto/rand"
	"encoding/hex"
	"sort"
	"strconv"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// Call is a finished telephony call; fields become the
// voximplant.statistic.get row and the ONVOXIMPLANTCALLEND data (§3.3).
type Call struct {
	// CallID is generated when empty.
	CallID       string
	CallType     string // "1" outgoing, "2" incoming… default "2"
	PhoneNumber  string
	PortalNumber string
	PortalUserID int64
	Duration     int
	StartDate    time.Time // default: now minus Duration
	// FailedCode is a string on purpose: "603-S" and "OTHER" exist (§3.3).
	// Default "200".
	FailedCode   string
	FailedReason string
	Cost         string
	CostCurrency string
	CRMEntity    string // e.g. "DEAL"
	CRMEntityID  int64
	ActivityID   int64
	// NoRecording makes a call without a recording file.
	NoRecording bool
}

type callRecord struct {
	id      int64
	call    Call
	ended   time.Time
	fileID  int64
	visible time.Time // when RECORD_FILE_ID appears
}

// EndCall stores a finished call; its recording (a Disk file) becomes
// visible in voximplant.statistic.get after Config.RecordingDelay. With fire
// it sends ONVOXIMPLANTCALLEND. It returns the CALL_ID.
func (p *Portal) EndCall(c Call, fire bool) string {
	if c.CallID == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		c.CallID = "externalCall." + hex.EncodeToString(b[:]) + "." + strconv.FormatInt(time.Now().Unix(), 10)
	}
	if c.CallType == "" {
		c.CallType = "2"
	}
	if c.FailedCode == "" {
		c.FailedCode, c.FailedReason = "200", "Success call"
	}
	if c.Cost == "" {
		c.Cost = "0"
	}
	if c.PortalUserID == 0 {
		c.PortalUserID = 1
	}
	p.mu.Lock()
	now := p.cfg.Clock.Now()
	if c.StartDate.IsZero() {
		c.StartDate = now.Add(-time.Duration(c.Duration) * time.Second)
	}
	rec := &callRecord{id: int64(len(p.calls) + 1), call: c, ended: now, visible: now.Add(p.cfg.RecordingDelay)}
	if !c.NoRecording {
		rec.fileID = p.addFile("call-"+strconv.FormatInt(rec.id, 10)+".mp3", []byte("ID3 fake recording of "+c.CallID), now)
	}
	p.calls = append(p.calls, rec)
	var f []firing
	if fire {
		f = []firing{{event: "ONVOXIMPLANTCALLEND", userID: c.PortalUserID, data: []b24event.Field{
			{Key: "[CALL_ID]", Value: c.CallID}, {Key: "[CALL_TYPE]", Value: c.CallType},
			{Key: "[PHONE_NUMBER]", Value: c.PhoneNumber}, {Key: "[PORTAL_NUMBER]", Value: c.PortalNumber},
			{Key: "[PORTAL_USER_ID]", Value: strconv.FormatInt(c.PortalUserID, 10)},
			{Key: "[CALL_DURATION]", Value: strconv.Itoa(c.Duration)},
			{Key: "[CALL_START_DATE]", Value: p.fmtTime(c.StartDate)},
			{Key: "[COST]", Value: c.Cost}, {Key: "[COST_CURRENCY]", Value: c.CostCurrency},
			{Key: "[CALL_FAILED_CODE]", Value: c.FailedCode}, {Key: "[CALL_FAILED_REASON]", Value: c.FailedReason},
			{Key: "[CRM_ACTIVITY_ID]", Value: strconv.FormatInt(c.ActivityID, 10)},
		}}}
	}
	p.mu.Unlock()
	p.dispatch(f)
	return c.CallID
}

func (p *Portal) callRow(r *callRecord, now time.Time) map[string]any {
	c := r.call
	var fileID any // (int)CALL_WEBDAV_ID ?: null (§5.5)
	if r.fileID != 0 && !now.Before(r.visible) {
		fileID = r.fileID
	}
	return map[string]any{
		"ID": strconv.FormatInt(r.id, 10), "PORTAL_USER_ID": strconv.FormatInt(c.PortalUserID, 10),
		"PORTAL_NUMBER": c.PortalNumber, "PHONE_NUMBER": c.PhoneNumber, "CALL_ID": c.CallID,
		"EXTERNAL_CALL_ID": "", "CALL_CATEGORY": "external", "CALL_DURATION": strconv.Itoa(c.Duration),
		"CALL_START_DATE": p.fmtTime(c.StartDate), "CALL_RECORD_URL": "", "CALL_VOTE": "0",
		"COST": c.Cost, "COST_CURRENCY": c.CostCurrency, "CALL_FAILED_CODE": c.FailedCode,
		"CALL_FAILED_REASON": c.FailedReason, "CRM_ENTITY_TYPE": c.CRMEntity,
		"CRM_ENTITY_ID": strconv.FormatInt(c.CRMEntityID, 10), "CRM_ACTIVITY_ID": strconv.FormatInt(c.ActivityID, 10),
		"REST_APP_ID": nil, "REST_APP_NAME": nil, "TRANSCRIPT_ID": nil, "TRANSCRIPT_PENDING": "N",
		"SESSION_ID": "0", "REDIAL_ATTEMPT": nil, "COMMENT": nil, "RECORD_DURATION": strconv.Itoa(c.Duration),
		"RECORD_FILE_ID": fileID, "CALL_TYPE": c.CallType,
	}
}

func voximplantStatisticGet(p *Portal, c *call) (any, *page, *apiError) {
	filter, _ := c.params.obj("FILTER")
	var rows []map[string]any
	for _, r := range p.calls {
		row := p.callRow(r, c.now)
		flat := map[string]any{}
		for k, v := range row {
			flat[k] = scalar(v)
		}
		if matchFilter(flat, filter) {
			rows = append(rows, row)
		}
	}
	if c.params.str("ORDER") == "DESC" {
		sort.SliceStable(rows, func(i, j int) bool { return compare(rows[i]["ID"].(string), rows[j]["ID"].(string)) > 0 })
	}
	out, pg := paginate(rows, c.params)
	res := make([]any, len(out))
	for i, r := range out {
		res[i] = r
	}
	return res, pg, nil
}

// file is a Disk file.
type file struct {
	id      int64
	name    string
	content []byte
	created time.Time
}

// AddFile stores a Disk file and returns its ID.
func (p *Portal) AddFile(name string, content []byte) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addFile(name, content, p.cfg.Clock.Now())
}

func (p *Portal) addFile(name string, content []byte, now time.Time) int64 {
	p.nextFile++
	p.files[p.nextFile] = &file{id: p.nextFile, name: name, content: content, created: now}
	return p.nextFile
}

func diskFileGet(p *Portal, c *call) (any, *page, *apiError) {
	id, ok := c.params.int64("id")
	f, found := p.files[id]
	if !ok || !found {
		return nil, nil, errf(404, "ERROR_NOT_FOUND", "Could not find entity with id '%d'", id)
	}
	sid := strconv.FormatInt(f.id, 10)
	return map[string]any{
		"ID": sid, "NAME": f.name, "CODE": nil, "STORAGE_ID": "1", "TYPE": "file", "PARENT_ID": "1",
		"DELETED_TYPE": "0", "CREATE_TIME": p.fmtTime(f.created), "UPDATE_TIME": p.fmtTime(f.created),
		"SIZE": strconv.Itoa(len(f.content)), "DOWNLOAD_URL": p.base + "/_fake/disk/" + sid + "/download",
		"DETAIL_URL": "http://" + p.domain + "/docs/file/" + f.name,
	}, nil, nil
}
