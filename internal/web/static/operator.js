// The operator's page: worker mode and rollout, stats and triggers, rollback
// history and the rollback button. The admin token stays in sessionStorage
// (gone when the tab closes) and is sent as a Bearer token.
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "scriptgen.adminToken";
// dirty: the switch form has edits not applied yet; edits counts them, so
// that an answer to an earlier Apply does not overwrite newer edits.
const op = { reachable: false, dirty: false, edits: 0, lastWorkerSystem: null };
window.scriptgenOperator = op;

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }
async function admin(method, path, body) {
  const t = token();
  const r = await sg.api(method, path, body, t ? { Authorization: "Bearer " + t } : {});
  // An answer given to a token since changed says nothing of the one now
  // kept (a 401 from before it was entered): a read is asked again with it.
  if (method === "GET" && token() !== t) return admin(method, path, body);
  return r;
}
// clearErrors hides every section's error: each was about the token that
// was kept when it came.
function clearErrors() {
  for (const el of document.querySelectorAll(".error")) { el.textContent = ""; el.hidden = true; }
}
function showError(id, msg) {
  const el = $(id);
  el.textContent = msg || "";
  el.hidden = !msg;
}
function badge(text, cls) { return sg.el("span", { class: "state state-" + (cls || text) }, String(text)); }
function num(v, digits) {
  if (v === undefined || v === null || v === "") return "—";
  return typeof v === "number" ? (digits !== undefined ? v.toFixed(digits) : String(v)) : String(v);
}
function secs(v) { return typeof v === "number" ? (v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s") : "—"; }
function bytes(v) { return typeof v === "number" ? (v / 1048576).toFixed(0) + " MB" : "—"; }

function showTokenState() {
  $("token-state").textContent = token() ? "토큰 저장됨 (이 탭) · token kept for this tab" : "토큰 없음 · no token";
}

// --- worker system ---------------------------------------------------------
async function loadWorkerSystem() {
  const r = await admin("GET", "/api/admin/worker-system");
  if (!r.ok) { showError("ws-error", r.error || "worker-system: " + r.status); return; }
  showError("ws-error", "");
  renderWorkerSystem(r.body);
}

function renderWorkerSystem(ws) {
  op.lastWorkerSystem = ws;
  $("ws-type").replaceChildren(badge(ws.type));
  $("ws-enabled").textContent = ws.enabled ? "예 · yes" : "아니오 · no";
  $("ws-rollout").textContent = num(ws.rollout_percent) + "%";
  $("ws-redis").replaceChildren(badge(ws.redis || "—", ws.redis));
  $("ws-kill").textContent = ws.kill_switch ? "켜짐 · ON (env)" : "꺼짐 · off";
  const s = ws.setting || {};
  $("ws-setting").textContent = s.updated_at
    ? "설정 setting: " + (s.enabled ? "on" : "off") + ", " + num(s.rollout_percent) + "% — " + (s.reason || "—") +
      " (" + (s.updated_by || "?") + ", " + sg.fmtTime(s.updated_at) + ")"
    : "";
  if (!op.dirty) {
    $("ws-switch").checked = s.enabled !== undefined ? !!s.enabled : !!ws.enabled;
    const p = s.rollout_percent !== undefined ? s.rollout_percent : ws.rollout_percent;
    $("ws-percent").value = p === undefined ? 100 : p;
    $("ws-percent-out").textContent = $("ws-percent").value;
  }
  $("worker-mode").textContent = ws.type;
}

async function applyWorkerSystem(ev) {
  ev.preventDefault();
  $("ws-apply").disabled = true;
  const edits = op.edits;
  const body = { enabled: $("ws-switch").checked, rollout_percent: Number($("ws-percent").value), reason: $("ws-reason").value.trim() || "operator page" };
  const r = await admin("PUT", "/api/admin/worker-system", body);
  $("ws-apply").disabled = false;
  if (!r.ok) { showError("ws-error", r.error); return; }
  showError("ws-error", "");
  if (op.edits === edits) { op.dirty = false; $("ws-reason").value = ""; }
  renderWorkerSystem(r.body);
  refreshStats();
}

// --- stats and triggers ----------------------------------------------------
async function refreshStats() {
  const r = await admin("GET", "/api/admin/stats");
  if (!r.ok) { showError("st-error", r.error); return; }
  showError("st-error", "");
  const s = r.body || {};
  const bt = s.background_tasks || {}, du = s.durable || {}, mem = s.memory || {};
  $("st-depth").textContent = num(du.queue_depth);
  $("st-latency").textContent = secs(du.latency_seconds);
  $("st-workers").textContent = num(du.workers_up);
  $("st-active").textContent = num(bt.active) + (bt.max !== undefined ? " / " + bt.max : "");
  $("st-queued").textContent = num(bt.queued);
  $("st-avg").textContent = secs(s.average_response_time);
  $("st-p99").textContent = secs(s.p99_response_time);
  $("st-mem").textContent = bytes(mem.rss_bytes) + (typeof mem.host_percent === "number" ? " · host " + mem.host_percent.toFixed(0) + "%" : "");
  const triggers = s.triggers || [];
  $("triggers").replaceChildren(...(triggers.length ? triggers.map((t) => sg.el("tr", {},
    sg.el("td", {}, t.name),
    sg.el("td", t.state === "inconclusive" ? { title: "측정 실패: 롤백에 세지 않음 · the measurement failed; it does not count toward a rollback" } : {}, badge(t.state)),
    sg.el("td", {}, num(t.value)),
    sg.el("td", {}, num(t.threshold)), sg.el("td", {}, t.since ? sg.fmtTime(t.since) : "—")))
    : [sg.el("tr", {}, sg.el("td", { colSpan: 5, class: "notice" }, "자동 롤백 꺼짐 또는 트리거 없음 · automatic rollback off or no triggers"))]));
}

// --- the last hour ----------------------------------------------------------
// Five sparklines of GET /api/admin/history, drawn as inline SVG: one path
// per series over the hour the server keeps (capacity × interval), a null
// value leaving a gap. Each says its current value and the hour's maximum,
// in text and in the SVG's label for screen readers.
const SVG = "http://www.w3.org/2000/svg";
const JOB_OUTCOMES = ["succeeded", "failed", "retry", "released", "dropped"];
const CHARTS = [
  { id: "ch-depth", label: "Queue depth", series: [{ key: "queue", value: (p) => p.queue_depth }], fmt: num },
  { id: "ch-delay", label: "Queue delay", series: [{ key: "delay", value: (p) => p.queue_delay_seconds }], fmt: secs },
  { id: "ch-active", label: "Active background_tasks", series: [{ key: "active", value: (p) => p.background_tasks_active }], fmt: num },
  { id: "ch-jobs", label: "Jobs per second", series: JOB_OUTCOMES.map((o) => ({ key: o, value: (p) => p.jobs_per_second && p.jobs_per_second[o] })),
    fmt: (v) => typeof v === "number" ? v.toFixed(2) + "/s" : "—" },
  { id: "ch-p99", label: "p99 response", series: [{ key: "p99", value: (p) => p.p99_response_seconds }], fmt: secs },
];

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function drawChart(c, view) {
  const fig = $(c.id);
  const caption = fig.querySelector("figcaption");
  const points = view.points || [];
  const W = 300, H = 60;
  const values = (s) => points.map((p) => { const v = s.value(p); return typeof v === "number" ? v : null; });
  const all = c.series.flatMap((s) => values(s)).filter((v) => v !== null);
  if (!all.length) {
    fig.replaceChildren(caption, sg.el("p", { class: "notice" }, "데이터 없음 · no data yet"));
    fig.dataset.points = "0";
    return;
  }
  const max = Math.max(...all);
  const span = (view.capacity || points.length) * (view.interval_seconds || 1) * 1000;
  const end = Date.parse(points[points.length - 1].at);
  const x = (p) => (W * (1 - (end - Date.parse(p.at)) / span)).toFixed(1);
  const y = (v) => (H - 2 - (H - 4) * (max > 0 ? v / max : 0)).toFixed(1);
  // Several series (jobs by outcome) are labelled by their total.
  const total = (p) => c.series.reduce((sum, s) => { const v = s.value(p); return typeof v === "number" ? (sum || 0) + v : sum; }, null);
  const totals = points.map(total).filter((v) => v !== null);
  const now = total(points[points.length - 1]);
  const top = Math.max(...totals);
  const text = c.label + ", last hour: now " + c.fmt(now) + ", max " + c.fmt(top) + " (" + points.length + " points)";
  const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, preserveAspectRatio: "none", role: "img", "aria-label": text });
  svg.append(svgEl("title"));
  svg.firstChild.textContent = text;
  for (const s of c.series) {
    // A point alone between gaps gets a short stroke, so that it shows.
    let d = "", pen = "M", run = 0;
    const endRun = () => { if (run === 1) d += "h1 "; run = 0; };
    values(s).forEach((v, i) => {
      if (v === null) { endRun(); pen = "M"; return; }
      d += pen + x(points[i]) + "," + y(v) + " ";
      pen = "L";
      run++;
    });
    endRun();
    if (d) svg.append(svgEl("path", { d: d.trim(), class: "s-" + s.key, "data-series": s.key }));
  }
  const kids = [caption, svg,
    sg.el("div", { class: "values" }, (c.series.length > 1 ? "합계 total " : "") + "현재 now " + c.fmt(now) + " · 최대 max " + c.fmt(top))];
  if (c.series.length > 1) kids.push(sg.el("div", { class: "legend" }, ...c.series.map((s) => sg.el("span", { class: "s-" + s.key }, s.key + " "))));
  fig.replaceChildren(...kids);
  fig.dataset.points = String(points.length);
}

async function loadCharts() {
  const r = await admin("GET", "/api/admin/history");
  if (!r.ok) { showError("ch-error", r.error); return; }
  showError("ch-error", "");
  const v = r.body || {};
  const minutes = ((v.capacity || 0) * (v.interval_seconds || 0) / 60).toFixed(0);
  $("ch-scope").textContent = "이 레플리카가 본 것 · as this replica saw it: 점 points every " + num(v.interval_seconds) +
    " s, last " + minutes + " min; 대기열과 작업/초는 클러스터 전체 · queue figures and jobs/s are cluster-wide " +
    "(jobs/s up to one heartbeat late), the rest this replica's";
  for (const c of CHARTS) drawChart(c, v);
}

// --- replicas --------------------------------------------------------------
// Every serving replica and the flag revision it applied; one behind the
// current revision for longer than the server's stale_after is marked.
function age(v) {
  if (typeof v !== "number") return "—";
  if (v < 120) return v.toFixed(0) + " s";
  if (v < 7200) return (v / 60).toFixed(0) + " min";
  return (v / 3600).toFixed(1) + " h";
}

async function loadReplicas() {
  const r = await admin("GET", "/api/admin/replicas");
  if (!r.ok) { showError("rp-error", r.error); return; }
  showError("rp-error", "");
  const v = r.body || {};
  const items = v.replicas || [];
  $("rp-summary").textContent = num(v.up) + " up · flag revision " + num(v.flag_revision) +
    (v.stale ? " · " + v.stale + " not applied within " + num(v.stale_after_seconds) + " s" : "");
  $("replicas").replaceChildren(...(items.length ? items.map((p) => sg.el("tr", { "data-id": p.id, class: p.flag_stale ? "stale" : "" },
    sg.el("td", {}, p.id + (p.id === v.self ? " (this)" : "")), sg.el("td", {}, p.address || "—"), sg.el("td", {}, badge(p.state)),
    sg.el("td", {}, p.flag_stale ? badge("r" + p.flag_revision + " ≠ r" + v.flag_revision + " · stale", "firing") : "r" + num(p.flag_revision)),
    sg.el("td", {}, age(p.age_seconds)), sg.el("td", {}, age(p.last_seen_seconds)), sg.el("td", {}, p.version || "—")))
    : [sg.el("tr", {}, sg.el("td", { colSpan: 7, class: "notice" }, "레플리카 없음 · no replicas registered"))]));
}

// --- rollback --------------------------------------------------------------
async function loadHistory() {
  const r = await admin("GET", "/api/admin/rollbacks");
  if (!r.ok) { showError("history-error", r.error); return; }
  showError("history-error", "");
  const items = (r.body && r.body.items) || [];
  $("history").replaceChildren(...(items.length ? items.map((a) => sg.el("tr", { "data-id": a.id },
    sg.el("td", {}, sg.fmtTime(a.started_at)), sg.el("td", {}, a.kind), sg.el("td", {}, a.trigger || "—"),
    sg.el("td", {}, a.reason || "—"), sg.el("td", {}, a.status || "—"),
    sg.el("td", {}, typeof a.duration_ms === "number" ? a.duration_ms + " ms" : "—"),
    sg.el("td", {}, num(a.jobs_migrated) + " / " + num(a.jobs_failed)),
    sg.el("td", {}, sg.el("button", { type: "button", class: "link", onclick: () => showReport(a.id) }, "보고서 · report"))))
    : [sg.el("tr", {}, sg.el("td", { colSpan: 8, class: "notice" }, "이력 없음 · no rollbacks yet"))]));
}

async function showReport(id) {
  const r = await admin("GET", "/api/admin/rollbacks/" + encodeURIComponent(id) + "/report");
  $("report").hidden = false;
  $("report").textContent = r.ok ? r.text : r.error;
}

async function rollback() {
  const reason = $("rollback-reason").value.trim();
  if (!reason) { showError("rollback-error", "사유를 입력하세요 · enter a reason"); return; }
  $("rollback-go").disabled = true;
  $("rollback-result").textContent = "롤백 중… · rolling back…";
  const r = await admin("POST", "/api/admin/rollback", { reason });
  $("rollback-go").disabled = false;
  $("rollback-confirm").hidden = true;
  if (!r.ok) { $("rollback-result").textContent = ""; showError("rollback-error", r.error); }
  else {
    showError("rollback-error", "");
    const rec = (r.body && (r.body.record || r.body)) || {};
    $("rollback-result").textContent = "롤백 완료 · rolled back: " + num(rec.jobs_migrated) + " migrated, " +
      num(rec.jobs_failed) + " failed, " + num(rec.duration_ms) + " ms (" + (rec.status || "") + ")";
  }
  // What the rollback leaves to the operator (the answer's next_steps): while
  // durable workers are up, "stop the durable workers: N still up" first —
  // scriptgen verify fails until they stop.
  const next = (r.ok && r.body && r.body.next_steps) || [];
  $("rollback-next-steps").replaceChildren(...next.map(s => sg.el("li", {}, s)));
  $("rollback-next").hidden = next.length === 0;
  refreshAll();
}

// --- failed jobs and a job's event log ---------------------------------------
async function loadFailed() {
  const r = await admin("GET", "/api/generation?status=failed&limit=50");
  if (!r.ok) { showError("failed-error", r.error); return; }
  showError("failed-error", "");
  const items = (r.body && r.body.items) || [];
  $("failed").replaceChildren(...(items.length ? items.map((j) => sg.el("tr", {},
    sg.el("td", {}, sg.el("code", {}, j.id)), sg.el("td", {}, j.project_id), sg.el("td", {}, j.kind),
    sg.el("td", {}, num(j.attempt) + " / " + num(j.max_attempts)), sg.el("td", {}, j.error || "—"),
    sg.el("td", {}, sg.fmtTime(j.updated_at)),
    sg.el("td", {},
      sg.el("button", { type: "button", onclick: () => retryJob(j.id) }, "재시도 · Retry"), " ",
      sg.el("button", { type: "button", onclick: () => showJobLog(j.id) }, "기록 · Events"))))
    : [sg.el("tr", {}, sg.el("td", { colSpan: 7, class: "notice" }, "실패한 작업 없음 · no failed job"))]));
}

async function retryJob(id) {
  const r = await admin("POST", "/api/admin/jobs/" + encodeURIComponent(id) + "/retry");
  if (!r.ok) { showError("failed-error", r.error); return; }
  showError("failed-error", "");
  loadFailed();
  showJobLog(id);
}

// showJobLog reads the job's own event log: the event stream of a finished
// job is its whole log, ending with the final event, then the stream ends.
async function showJobLog(id) {
  const res = await fetch("/api/generation/" + encodeURIComponent(id) + "/events",
    { headers: token() ? { Authorization: "Bearer " + token() } : {} });
  if (!res.ok) { showError("failed-error", "events: HTTP " + res.status); return; }
  const rows = [];
  // A running job's stream stays open: read what has come within 2 s.
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 2000;
  while (Date.now() < deadline) {
    const chunk = await Promise.race([reader.read(), new Promise((ok) => setTimeout(() => ok({ timeout: true }), 500))]);
    if (chunk.timeout) continue;
    if (chunk.done) break;
    text += decoder.decode(chunk.value, { stream: true });
  }
  reader.cancel().catch(() => {});
  for (const block of text.split("\n\n")) {
    const name = (block.match(/^event: (.*)$/m) || [])[1];
    const data = (block.match(/^data: (.*)$/m) || [])[1];
    if (!name || !data) continue;
    let ev;
    try { ev = JSON.parse(data); } catch { continue; }
    rows.push(sg.el("tr", {}, sg.el("td", {}, num(ev.seq)), sg.el("td", {}, name), sg.el("td", {}, ev.status || "—"),
      sg.el("td", {}, ev.stage || "—"), sg.el("td", {}, ev.message || (ev.text !== undefined ? ev.text.length + " chars of script" : "—")),
      sg.el("td", {}, sg.fmtTime(ev.created_at))));
  }
  $("job-log-title").hidden = false;
  $("job-log-title").textContent = "작업 기록 · Job's event log — " + id;
  $("job-log-table").hidden = false;
  $("job-log").replaceChildren(...rows);
}

// --- start -----------------------------------------------------------------
function refreshAll() {
  if (!op.dirty) loadWorkerSystem();
  refreshStats();
  loadCharts();
  loadReplicas();
  loadHistory();
  loadFailed();
}

$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const t = $("token").value.trim();
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  $("token").value = "";
  showTokenState();
  clearErrors();
  refreshAll();
});
$("forget").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showTokenState(); clearErrors(); refreshAll(); });
$("ws-form").addEventListener("submit", applyWorkerSystem);
for (const id of ["ws-switch", "ws-percent", "ws-reason"]) $(id).addEventListener("input", () => { op.dirty = true; op.edits++; });
$("ws-percent").addEventListener("input", () => { $("ws-percent-out").textContent = $("ws-percent").value; });
// Switching the durable worker on after a rollback (which leaves 0 %) means
// every project, as the API's PUT without a percent does.
$("ws-switch").addEventListener("input", () => {
  if ($("ws-switch").checked && Number($("ws-percent").value) === 0) {
    $("ws-percent").value = 100;
    $("ws-percent-out").textContent = "100";
  }
});
$("rollback").addEventListener("click", () => { $("rollback-confirm").hidden = false; $("rollback-reason").focus(); });
$("rollback-cancel").addEventListener("click", () => { $("rollback-confirm").hidden = true; });
$("rollback-go").addEventListener("click", rollback);

showTokenState();
sg.watchSystem((ok) => { op.reachable = ok; sg.conn.set(ok ? "live" : "offline"); });
refreshAll();
setInterval(refreshAll, 3000);
