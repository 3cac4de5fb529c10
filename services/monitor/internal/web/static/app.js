// b24hub monitor dashboard: vanilla JavaScript over the JSON API. The
// session cookie set at sign-in authenticates every call.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return e;
}

function statusBadge(s) {
  return el("span", { class: "status status-" + s, "data-status": s }, s);
}

function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return d.toLocaleString(undefined, { hour12: false });
}

function fmtAge(t) {
  const s = Math.max(0, Math.round((Date.now() - new Date(t).getTime()) / 1000));
  if (s < 90) return s + "s";
  if (s < 5400) return Math.round(s / 60) + "m";
  if (s < 172800) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}

async function api(path, opts = {}) {
  const res = await fetch("/api/v1" + path, {
    credentials: "same-origin",
    headers: opts.body ? { "Content-Type": "application/json" } : {},
    ...opts,
  });
  if (res.status === 401) {
    window.location.href = "/";
    throw new Error("signed out");
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function fill(tbody, rows, empty, cols) {
  tbody.replaceChildren();
  if (rows.length === 0) {
    tbody.append(el("tr", {}, el("td", { colspan: String(cols), class: "muted" }, empty)));
  }
  for (const r of rows) tbody.append(r);
}

async function loadAlerts() {
  const { alerts } = await api("/alerts?state=all&limit=20");
  const box = $("#alerts");
  box.replaceChildren();
  if (alerts.length === 0) box.append(el("p", { class: "muted" }, "No alerts."));
  for (const a of alerts) {
    box.append(el("div", { class: "alert " + a.state, "data-alert": a.key },
      statusBadge(a.state), " ", el("strong", {}, a.rule), " · ", a.target, " — ", a.message,
      el("span", { class: "muted" }, "  since " + fmtTime(a.started_at) + (a.resolved_at ? ", resolved " + fmtTime(a.resolved_at) : ""))));
  }
}

async function loadHealth() {
  const { portals } = await api("/portals");
  const rows = [];
  for (const p of portals) {
    const silence = {};
    for (const s of p.silence || []) silence[s.event_type] = s;
    for (const ev of p.events) {
      const s = silence[ev.event_type];
      rows.push(el("tr", { "data-portal": p.portal, "data-event": ev.event_type },
        el("td", {}, p.portal, el("br"), el("span", { class: "muted" }, p.domain || "")),
        el("td", {}, ev.event_type), el("td", {}, ev.source),
        el("td", {}, fmtTime(ev.last_received_at)), el("td", {}, fmtAge(ev.last_received_at)),
        el("td", {}, String(ev.total)),
        el("td", {}, p.watched === false
          ? el("span", { class: "muted", "data-watched": "false", title: "uninstalled or removed from the portal registry: no rule watches it" }, "not watched")
          : s ? statusBadge(s.firing ? "firing" : "ok") : el("span", { class: "muted" }, "—"))));
    }
  }
  fill($("#health tbody"), rows, "No events recorded yet.", 7);
}

const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

async function loadThroughput() {
  const stats = await api("/stats?window=1h&bucket=5m");
  const from = new Date(stats.from).getTime(), to = new Date(stats.to).getTime();
  const bucketMs = stats.bucket_seconds * 1000;
  const n = Math.max(1, Math.ceil((to - from) / bucketMs));
  const series = {};
  for (const p of stats.throughput) {
    const i = Math.min(n - 1, Math.floor((new Date(p.bucket).getTime() - from) / bucketMs));
    (series[p.event_type] ||= new Array(n).fill(0))[i] += p.n;
  }
  const types = Object.keys(series).sort();
  const maxY = Math.max(1, ...types.flatMap((t) => series[t]));
  const W = 640, H = 160, L = 36, B = 18;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 20 * Math.ceil(types.length / 3)}`);
  svg.setAttribute("width", "100%");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "events per " + stats.bucket_seconds / 60 + " minutes by type");
  const add = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  add("line", { x1: L, y1: H - B, x2: W, y2: H - B, stroke: "#ccc" });
  add("line", { x1: L, y1: 4, x2: L, y2: H - B, stroke: "#ccc" });
  add("text", { x: 2, y: 12 }, String(maxY));
  add("text", { x: 2, y: H - B }, "0");
  add("text", { x: L, y: H - 2 }, new Date(from).toLocaleTimeString(undefined, { hour12: false }));
  add("text", { x: W - 60, y: H - 2 }, new Date(to).toLocaleTimeString(undefined, { hour12: false }));
  const x = (i) => L + ((W - L - 4) * (i + 0.5)) / n;
  const y = (v) => H - B - ((H - B - 8) * v) / maxY;
  types.forEach((t, k) => {
    const color = palette[k % palette.length];
    const pts = series[t].map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    add("polyline", { points: pts, fill: "none", stroke: color, "stroke-width": 2, "data-series": t });
    const lx = L + (k % 3) * 200, ly = H + 14 + 20 * Math.floor(k / 3);
    add("rect", { x: lx, y: ly - 9, width: 10, height: 10, fill: color });
    add("text", { x: lx + 14, y: ly }, `${t} (${series[t].reduce((a, b) => a + b, 0)})`);
  });
  const box = $("#throughput");
  box.replaceChildren(types.length ? svg : el("p", { class: "muted" }, "No events in the last hour."));
}

async function loadErrors() {
  const { deliveries } = await api("/deliveries?status=error,dead&limit=20");
  fill($("#errors tbody"), deliveries.map((d) => el("tr", { class: "clickable", onclick: () => showEvent(d.event_id) },
    el("td", {}, fmtTime(d.last_attempt_at || d.updated_at)), el("td", {}, d.consumer), el("td", {}, d.portal),
    el("td", {}, d.event_type), el("td", {}, statusBadge(d.status)), el("td", {}, String(d.attempts)),
    el("td", { class: "err" }, (d.error_kind ? "[" + d.error_kind + "] " : "") + (d.last_error || "")))),
  "No recent errors.", 7);
}

async function replayDeadLetter(d, button) {
  button.disabled = true;
  button.textContent = "Replaying…";
  try {
    const r = await api("/replay", { method: "POST", body: JSON.stringify({ event_id: d.event_id, consumer: d.consumer }) });
    button.textContent = "Replayed as " + r.replayed[0].id;
    await loadDead();
  } catch (e) {
    button.disabled = false;
    button.textContent = "Replay (failed: " + e.message + ")";
  }
}

async function loadDead() {
  const { dead_letters } = await api("/dead-letters?limit=50");
  fill($("#dead tbody"), dead_letters.map((d) => {
    const btn = el("button", { class: "replay", "data-event": d.event_id, "data-consumer": d.consumer }, "Replay");
    btn.addEventListener("click", (ev) => { ev.stopPropagation(); replayDeadLetter(d, btn); });
    const replay = d.replay
      ? el("span", { class: "replay-status", "data-replay": d.replay.id }, statusBadge(d.replay.status), " ",
          el("span", { class: "muted" }, d.replay.id))
      : "";
    return el("tr", { class: "clickable", "data-event": d.event_id, onclick: () => showEvent(d.event_id) },
      el("td", {}, fmtTime(d.dead_at)), el("td", {}, d.consumer), el("td", {}, d.portal), el("td", {}, d.event_type),
      el("td", {}, d.entity_id), el("td", {}, d.dead_reason), el("td", { class: "err" }, d.last_error || ""),
      el("td", {}, btn, " ", replay));
  }), "No dead letters.", 8);
}

let cursor = "";

// searchFilter is the search form as an event filter (the JSON and query
// names of the API): empty fields left out, the from/to inputs (local
// date-time) as RFC 3339.
function searchFilter() {
  const f = {};
  for (const [k, v] of new FormData($("#search"))) {
    if (!v) continue;
    f[k] = k === "from" || k === "to" ? new Date(v).toISOString() : v;
  }
  return f;
}

function describeFilter(f) {
  const parts = Object.entries(f).map(([k, v]) => k + "=" + v);
  return parts.length ? parts.join(", ") : "no filter: every event";
}

async function search(more = false) {
  const q = new URLSearchParams(searchFilter());
  q.set("limit", "25");
  if (more && cursor) q.set("cursor", cursor);
  const page = await api("/events?" + q);
  cursor = page.next_cursor || "";
  $("#more").hidden = !cursor;
  const rows = page.events.map((e) => el("tr", { class: "clickable", "data-event": e.id, onclick: () => showEvent(e.id) },
    el("td", {}, fmtTime(e.received_at)), el("td", {}, e.portal), el("td", {}, e.event_type), el("td", {}, e.entity_id),
    el("td", {}, e.source), el("td", {}, statusBadge(e.status)), el("td", { class: "muted" }, e.id)));
  const tbody = $("#events tbody");
  if (more) rows.forEach((r) => tbody.append(r));
  else fill(tbody, rows, "No events match.", 7);
}

// Bulk replay by filter, as `b24ctl replay --dry-run` then confirm: a dry
// run counts what the filter matches, the operator confirms that count, and
// the replay runs with the same filter, its end frozen at the dry run and
// its limit the confirmed count, so no more than confirmed is republished.
let bulkRequest = null;

async function planBulkReplay() {
  const f = searchFilter();
  if (!f.to) f.to = new Date().toISOString();
  const box = $("#bulk-replay");
  box.classList.remove("done");
  const plan = await api("/replay", { method: "POST", body: JSON.stringify({ events: f, dry_run: true }) });
  const confirm = $("#bulk-replay-confirm");
  box.dataset.wouldReplay = String(plan.would_replay);
  const refused = (plan.refused || []).length
    ? " " + plan.refused.length + " app lifecycle events (ONAPPINSTALL, ONAPPUPDATE, ONAPPUNINSTALL) match too: they are never replayed and are left out."
    : "";
  if (plan.would_replay === 0) {
    bulkRequest = null;
    $("#bulk-replay-text").textContent = "No events to replay match (" + describeFilter(f) + ")." + refused;
    confirm.hidden = true;
  } else {
    bulkRequest = { events: f, limit: plan.would_replay };
    $("#bulk-replay-text").textContent = "Replay " + plan.would_replay + " events matching " + describeFilter(f) + "?" +
      (plan.truncated ? " More match than the limit (" + plan.limit + "): only the newest " + plan.would_replay + " would be replayed; narrow the filter for the rest." : "") +
      " Every consumer sees them again." + refused;
    confirm.textContent = "Replay " + plan.would_replay + " events";
    confirm.hidden = false;
    confirm.disabled = false;
  }
  box.hidden = false;
}

async function runBulkReplay() {
  if (!bulkRequest) return;
  const confirm = $("#bulk-replay-confirm");
  confirm.disabled = true;
  const req = bulkRequest;
  bulkRequest = null;
  try {
    const r = await api("/replay", { method: "POST", body: JSON.stringify(req) });
    const failed = Object.keys(r.failed || {}).length;
    $("#bulk-replay-text").textContent = "Replayed " + r.replayed.length + " events" +
      ((r.refused || []).length ? ", " + r.refused.length + " lifecycle events refused" : "") +
      (failed ? ", " + failed + " failed: " + Object.entries(r.failed).map(([id, e]) => id + ": " + e).join("; ") : "") + ".";
    $("#bulk-replay").classList.add("done");
    confirm.hidden = true;
  } catch (e) {
    $("#bulk-replay-text").textContent = "Replay failed: " + e.message;
  }
}

async function showEvent(id) {
  const d = await api("/events/" + encodeURIComponent(id));
  history.replaceState(null, "", "#event=" + encodeURIComponent(id));
  const box = $("#detail");
  const e = d.event;
  const trace = d.trace_url
    ? el("a", { href: d.trace_url, target: "_blank", rel: "noopener", "data-testid": "trace-link" }, e.trace_id)
    : (e.trace_id || "—");
  const deliveries = el("table", { "data-testid": "deliveries" },
    el("thead", {}, el("tr", {}, ...["Consumer", "Status", "Attempts", "First", "Last", "Duration", "Error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...(d.deliveries.length ? d.deliveries.map((x) => el("tr", { "data-consumer": x.consumer },
      el("td", {}, x.consumer), el("td", {}, statusBadge(x.status)), el("td", {}, String(x.attempts)),
      el("td", {}, fmtTime(x.first_attempt_at)), el("td", {}, fmtTime(x.last_attempt_at)),
      el("td", {}, x.duration_ms.toFixed(1) + " ms"), el("td", { class: "err" }, x.last_error || "")))
      : [el("tr", {}, el("td", { colspan: "7", class: "muted" }, "No consumer has reported yet."))])));
  const replays = d.replays.length
    ? el("ul", {}, ...d.replays.map((r) => el("li", {}, r.id, " ", statusBadge(r.status), " ", fmtTime(r.requested_at))))
    : el("p", { class: "muted" }, "Never replayed.");
  const replayBtn = el("button", { id: "replay-event", "data-event": e.id }, "Replay this event");
  replayBtn.addEventListener("click", async () => {
    replayBtn.disabled = true;
    try {
      const r = await api("/replay", { method: "POST", body: JSON.stringify({ event_id: e.id }) });
      replayBtn.textContent = "Replayed as " + r.replayed[0].id;
    } catch (err) {
      replayBtn.textContent = "Replay failed: " + err.message;
    }
  });
  box.replaceChildren(
    el("h3", {}, e.event_type, " · ", e.portal, " ", statusBadge(e.status)),
    el("p", {}, "Id ", el("code", { "data-testid": "event-id" }, e.id), " · received ", fmtTime(e.received_at), " · source ", e.source,
      e.replay_of ? " · replay of " + e.replay_of : "", " · entity ", e.entity_id || "—"),
    el("p", {}, "Trace ", el("span", { "data-testid": "trace" }, trace)),
    el("h4", {}, "Deliveries"), deliveries,
    el("h4", {}, "Replays"), replays, replayBtn,
    el("h4", {}, "Payload (redacted)"), el("pre", {}, d.payload || d.payload_base64 || ""));
  box.hidden = false;
}

async function refresh() {
  const jobs = [loadAlerts, loadHealth, loadThroughput, loadErrors, loadDead];
  const results = await Promise.allSettled(jobs.map((f) => f()));
  const failed = results.filter((r) => r.status === "rejected");
  $("#status-line").textContent = failed.length ? "update failed: " + failed[0].reason.message : "";
  $("#refreshed").textContent = "updated " + new Date().toLocaleTimeString(undefined, { hour12: false });
  document.body.dataset.loaded = "true";
}

$("#search").addEventListener("submit", (ev) => { ev.preventDefault(); search().catch((e) => alert(e.message)); });
$("#more").addEventListener("click", () => search(true));
$("#replay-matching").addEventListener("click", () => planBulkReplay().catch((e) => {
  $("#bulk-replay-text").textContent = "Dry run failed: " + e.message;
  $("#bulk-replay-confirm").hidden = true;
  $("#bulk-replay").hidden = false;
}));
$("#bulk-replay-confirm").addEventListener("click", () => runBulkReplay());
$("#bulk-replay-cancel").addEventListener("click", () => { bulkRequest = null; $("#bulk-replay").hidden = true; });
refresh();
search().catch(() => {});
// An event's page: #event=<id> opens it (showEvent sets it, so the address
// can be shared).
function openLinkedEvent() {
  const linked = new URLSearchParams(location.hash.slice(1)).get("event");
  if (linked) showEvent(linked).catch((e) => { $("#status-line").textContent = "event " + linked + ": " + e.message; });
}
window.addEventListener("hashchange", openLinkedEvent);
openLinkedEvent();
setInterval(refresh, 5000);
