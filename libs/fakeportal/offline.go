package fakeportal

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/b24hub/b24hub/libs/b24event"
)

// offlineRecord is a row of the offline queue (§2.1).
type offlineRecord struct {
	id         int64
	ts         time.Time
	event      string
	data       json.RawMessage
	additional json.RawMessage
	messageID  string
	processID  string
	errFlag    bool
	app        *app
	connector  string
}

// messageID is md5(EVENT_NAME|json(EVENT_DATA)) (§2.1, [SRC] eventoffline.php).
func messageID(event string, data []byte) string {
	sum := md5.Sum([]byte(event + "|" + string(data)))
	return hex.EncodeToString(sum[:])
}

// enqueueOffline upserts a record. An unreserved record with the same
// MESSAGE_ID, app and connector absorbs the change (only its timestamp
// moves: "if the same deal is modified 1000 times, only one record… will
// remain"); a reserved one does not, so a change during processing makes a
// second record (§2.1). Caller holds p.mu.
func (p *Portal) enqueueOffline(h *handler, f firing, now time.Time) {
	data := dataJSON(f.data)
	mid := messageID(f.event, data)
	add := json.RawMessage("false")
	if f.userID != 0 {
		add, _ = json.Marshal(map[string]string{"user_id": strconv.FormatInt(f.userID, 10)})
	}
	for _, r := range p.offline {
		if r.app == h.app && r.connector == h.connector && r.messageID == mid && r.processID == "" {
			r.ts, r.additional = now, add
			p.stats.OfflineCoalesced++
			return
		}
	}
	p.nextOffline++
	p.offline = append(p.offline, &offlineRecord{id: p.nextOffline, ts: now, event: f.event, data: data,
		additional: add, messageID: mid, app: h.app, connector: h.connector})
	p.stats.OfflineQueued++
}

// notifyOffline sends ONOFFLINEEVENT (empty data, §2.5) to the app's
// handlers, at most once per portal hit and once per minTimeout. Caller holds
// p.mu.
func (p *Portal) notifyOffline(a *app, now time.Time, notified map[int64]bool) {
	for _, h := range p.handlers {
		if h.app != a || h.offline || h.event != "ONOFFLINEEVENT" || notified[h.id] {
			continue
		}
		if last, ok := p.lastNotify[h.id]; ok && now.Sub(last) < h.minTimeout {
			continue
		}
		notified[h.id] = true
		p.lastNotify[h.id] = now
		p.push1(h, firing{event: "ONOFFLINEEVENT", userID: a.UserID}, now)
	}
}

// OfflineQueue returns the queue as event.offline.list would show it.
func (p *Portal) OfflineQueue() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]map[string]any, len(p.offline))
	for i, r := range p.offline {
		out[i] = p.offlineRow(r, true)
	}
	return out
}

func (p *Portal) offlineRow(r *offlineRecord, full bool) map[string]any {
	row := map[string]any{
		"ID": strconv.FormatInt(r.id, 10), "TIMESTAMP_X": p.fmtTime(r.ts), "EVENT_NAME": r.event,
		"EVENT_DATA": r.data, "EVENT_ADDITIONAL": r.additional, "MESSAGE_ID": r.messageID,
	}
	if full {
		row["PROCESS_ID"] = r.processID
		row["ERROR"] = "0"
		if r.errFlag {
			row["ERROR"] = "1"
		}
	}
	return row
}

func (p *Portal) offlineFields(r *offlineRecord) map[string]any {
	e := "0"
	if r.errFlag {
		e = "1"
	}
	return map[string]any{"ID": strconv.FormatInt(r.id, 10), "TIMESTAMP_X": p.fmtTime(r.ts), "EVENT_NAME": r.event,
		"MESSAGE_ID": r.messageID, "PROCESS_ID": r.processID, "ERROR": e}
}

func (p *Portal) sortOffline(rows []*offlineRecord, order params, def string) {
	type key struct {
		field string
		desc  bool
	}
	var keys []key
	for k, v := range order {
		keys = append(keys, key{strings.ToUpper(k), strings.EqualFold(scalar(v), "DESC")})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].field < keys[j].field })
	keys = append(keys, key{def, false}, key{"ID", false})
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := p.offlineFields(rows[i]), p.offlineFields(rows[j])
		for _, k := range keys {
			c := compare(a[k.field].(string), b[k.field].(string))
			if k.desc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return false
	})
}

func newProcessID() string { return token() } // 32 hex chars (§2.2)

// eventOfflineGet implements event.offline.get (§2.2).
func eventOfflineGet(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	clear := c.params.flag("clear", true)
	if !clear && !p.cfg.Features["rest_offline_extended"] {
		return nil, nil, errf(403, "ACCESS_DENIED", "License restriction: extended offline events handling")
	}
	connector := c.params.str("auth_connector")
	if connector != "" && !p.cfg.Features["rest_auth_connector"] {
		return nil, nil, errf(403, "ACCESS_DENIED", "License restriction: auth_connector")
	}
	limit := int64(50)
	if n, ok := c.params.int64("limit"); ok {
		if n <= 0 {
			return nil, nil, errf(400, "INVALID_ARG_VALUE", "limit must be greater than 0")
		}
		limit = n
	}
	pid := c.params.str("process_id")
	wantErr := c.params.flag("error", false)
	filter, _ := c.params.obj("filter")
	var rows []*offlineRecord
	for _, r := range p.offline {
		if r.app != c.who.app || r.connector != connector {
			continue
		}
		if pid != "" && r.processID != pid {
			continue
		}
		if pid == "" && (r.processID != "" || r.errFlag != wantErr) {
			continue
		}
		if matchFilter(p.offlineFields(r), filter) {
			rows = append(rows, r)
		}
	}
	order, _ := c.params.obj("order")
	p.sortOffline(rows, order, "TIMESTAMP_X")
	if int64(len(rows)) > limit {
		rows = rows[:limit]
	}
	var procID any // null unless clear=0 or a process_id was passed
	switch {
	case pid != "":
		procID = pid
	case !clear && len(rows) > 0:
		fresh := newProcessID()
		for _, r := range rows {
			r.processID = fresh
		}
		procID = fresh
	case !clear:
		procID = newProcessID()
	}
	events := make([]any, len(rows))
	for i, r := range rows {
		events[i] = p.offlineRow(r, false)
	}
	if clear {
		p.removeOffline(func(r *offlineRecord) bool { return containsRecord(rows, r) })
	}
	return map[string]any{"process_id": procID, "events": events}, nil, nil
}

func containsRecord(rows []*offlineRecord, r *offlineRecord) bool {
	for _, x := range rows {
		if x == r {
			return true
		}
	}
	return false
}

func (p *Portal) removeOffline(drop func(*offlineRecord) bool) int {
	kept, n := p.offline[:0], 0
	for _, r := range p.offline {
		if drop(r) {
			n++
			continue
		}
		kept = append(kept, r)
	}
	p.offline = kept
	return n
}

// eventOfflineClear implements event.offline.clear (§2.3).
func eventOfflineClear(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	pid := c.params.str("process_id")
	if pid == "" {
		return nil, nil, errf(400, "ERROR_ARGUMENT", "Argument 'process_id' is null or empty")
	}
	ids := setOf(strList(c.params.list("id"))...)
	mids := strList(c.params.list("message_id"))
	for _, m := range mids {
		if len(m) != 32 {
			return nil, nil, errf(400, "ERROR_ARGUMENT", "Wrong message_id value: %s", m)
		}
	}
	midSet := setOf(mids...)
	p.removeOffline(func(r *offlineRecord) bool {
		if r.app != c.who.app || r.processID != pid {
			return false
		}
		switch {
		case len(ids) > 0:
			return ids[strconv.FormatInt(r.id, 10)]
		case len(midSet) > 0:
			return midSet[r.messageID]
		}
		return true
	})
	return true, nil, nil
}

// eventOfflineError implements event.offline.error (§2.3): the records are
// marked ERROR=1 and un-reserved; copies of the same MESSAGE_ID held by
// other processes are deleted.
func eventOfflineError(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	pid := c.params.str("process_id")
	mids := setOf(strList(c.params.list("message_id"))...)
	if pid == "" || len(mids) == 0 {
		return nil, nil, errf(400, "ERROR_ARGUMENT", "Arguments 'process_id' and 'message_id' are required")
	}
	p.removeOffline(func(r *offlineRecord) bool {
		return r.app == c.who.app && mids[r.messageID] && r.processID != "" && r.processID != pid
	})
	for _, r := range p.offline {
		if r.app == c.who.app && r.processID == pid && mids[r.messageID] {
			r.errFlag, r.processID = true, ""
		}
	}
	return true, nil, nil
}

// eventOfflineList implements event.offline.list (§2.3): read-only, paged.
func eventOfflineList(p *Portal, c *call) (any, *page, *apiError) {
	if c.who.app == nil {
		return nil, nil, errWrongAuthType
	}
	connector := c.params.str("auth_connector")
	filter, _ := c.params.obj("filter")
	var rows []*offlineRecord
	for _, r := range p.offline {
		if r.app == c.who.app && r.connector == connector && matchFilter(p.offlineFields(r), filter) {
			rows = append(rows, r)
		}
	}
	order, _ := c.params.obj("order")
	p.sortOffline(rows, order, "ID")
	out, pg := paginate(rows, c.params)
	res := make([]any, len(out))
	for i, r := range out {
		res[i] = p.offlineRow(r, true)
	}
	return res, pg, nil
}

// dataJSON renders event data fields ("[FIELDS][ID]"="7") as the JSON the
// portal stores in EVENT_DATA ({"FIELDS":{"ID":"7"}}), keeping order.
func dataJSON(fields []b24event.Field) json.RawMessage {
	root := &onode{}
	for _, f := range fields {
		path := strings.Split(strings.Trim(f.Key, "[]"), "][")
		n := root
		for _, k := range path[:len(path)-1] {
			n = n.child(k)
		}
		n.set(path[len(path)-1], f.Value)
	}
	if len(root.keys) == 0 {
		return json.RawMessage("[]") // PHP encodes an empty array as []
	}
	var b bytes.Buffer
	root.write(&b)
	return b.Bytes()
}

// onode is an insertion-ordered JSON object.
type onode struct {
	keys []string
	vals map[string]any // string or *onode
}

func (n *onode) child(k string) *onode {
	if c, ok := n.vals[k].(*onode); ok {
		return c
	}
	c := &onode{}
	n.set(k, c)
	return c
}

func (n *onode) set(k string, v any) {
	if n.vals == nil {
		n.vals = map[string]any{}
	}
	if _, ok := n.vals[k]; !ok {
		n.keys = append(n.keys, k)
	}
	n.vals[k] = v
}

func (n *onode) write(b *bytes.Buffer) {
	b.WriteByte('{')
	for i, k := range n.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		switch v := n.vals[k].(type) {
		case *onode:
			v.write(b)
		default:
			vb, _ := json.Marshal(v)
			b.Write(vb)
		}
	}
	b.WriteByte('}')
}
