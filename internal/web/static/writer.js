// The writer's page: submit an episode, follow its event stream, read the
// script, browse the project's episodes.
"use strict";

const STATUS_KO = { queued: "대기 중", running: "생성 중", succeeded: "완료", failed: "실패", cancelled: "취소됨" };
const STAGE_KO = { queued: "대기", started: "시작", outline: "개요", scenes: "장면", dialogue: "대사", polish: "다듬기", done: "완료" };
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

// writer is the page's state; tests read it (seqs, duplicates, gaps, states).
const writer = {
  jobId: "", project: "", lastSeq: 0, seqs: [], duplicates: [], gaps: [],
  es: null, attempts: 0, timer: null, done: false,
  stream: "idle", // idle | live | reconnecting
  reachable: false, states: [],
};
window.scriptgenWriter = writer;

const $ = (id) => document.getElementById(id);

function showConn() {
  let state;
  if (writer.stream === "reconnecting") state = "reconnecting";
  else if (writer.stream === "live") state = "live";
  else state = writer.reachable && navigator.onLine ? "live" : "offline";
  if (writer.states[writer.states.length - 1] !== state) writer.states.push(state);
  const extra = state === "reconnecting" ? "(#" + writer.attempts + ")" : "";
  sg.conn.set(state, extra);
}

// --- recent projects -------------------------------------------------------
function recentProjects() {
  try { return JSON.parse(localStorage.getItem("scriptgen.projects") || "[]"); } catch (e) { return []; }
}
function rememberProject(p) {
  const list = [p].concat(recentProjects().filter((x) => x !== p)).slice(0, 20);
  localStorage.setItem("scriptgen.projects", JSON.stringify(list));
  fillProjects();
}
function fillProjects() {
  $("projects").replaceChildren(...recentProjects().map((p) => sg.el("option", { value: p })));
}

// --- submitting ------------------------------------------------------------
async function submitEpisode(ev) {
  ev.preventDefault();
  const err = $("form-error");
  err.hidden = true;
  const project = $("project").value.trim();
  const characters = $("characters").value.split(/[,，、]/).map((s) => s.trim()).filter(Boolean);
  const body = {
    project_id: project,
    episode_data: { title: $("title").value.trim(), synopsis: $("synopsis").value.trim(), characters },
  };
  // One key per submission: a retry after a network error is the same request.
  const key = sg.newKey();
  $("submit").disabled = true;
  let r;
  for (let attempt = 0; attempt < 4; attempt++) {
    r = await sg.api("POST", "/api/generation", body, sg.writerAuth({ "Idempotency-Key": key }));
    // 409 in flight: an attempt the network lost is still being handled;
    // asking again with the same key soon gets its job.
    const inFlight = r.status === 409 && r.body && r.body.error && r.body.error.code === "idempotency_key_in_flight";
    if (r.status !== 0 && r.status < 500 && !inFlight) break;
    await new Promise((res) => setTimeout(res, 1000 * (attempt + 1)));
  }
  $("submit").disabled = false;
  if (!r.ok) {
    err.textContent = "제출 실패 · Submission failed: " + (r.error || r.status);
    err.hidden = false;
    return;
  }
  rememberProject(project);
  $("episodes-project").textContent = project;
  watch(r.body.id, project);
}

// --- following the event stream -------------------------------------------
function watch(jobId, project) {
  stopWatching();
  Object.assign(writer, { jobId, project, lastSeq: 0, seqs: [], duplicates: [], gaps: [], attempts: 0, done: false });
  sessionStorage.setItem("scriptgen.job", JSON.stringify({ id: jobId, project }));
  $("job-card").hidden = false;
  $("script-card").hidden = true;
  $("job-id").textContent = jobId;
  $("event-log").replaceChildren();
  $("event-count").textContent = "0";
  setProgress(0, "queued", "");
  $("job-status").textContent = "queued · " + STATUS_KO.queued;
  connect();
}

function stopWatching() {
  if (writer.es) writer.es.close();
  writer.es = null;
  clearTimeout(writer.timer);
}

function connect() {
  // EventSource sends no headers: the key goes as ?access_token=.
  const params = new URLSearchParams();
  if (writer.lastSeq > 0) params.set("last_event_id", writer.lastSeq);
  if (sg.writerKey()) params.set("access_token", sg.writerKey());
  const q = params.toString() ? "?" + params.toString() : "";
  const es = new EventSource("/api/generation/" + encodeURIComponent(writer.jobId) + "/events" + q);
  writer.es = es;
  es.onopen = () => { writer.stream = "live"; showConn(); };
  for (const type of ["status", "progress", "result", "error"]) es.addEventListener(type, onEvent);
  // EventSource would reconnect by itself at a fixed delay; the earlier client's hook (docs/runbook.md, appendix A)
  // backs off 1.5× up to 5 s and resumes from the last event id, so do that.
  es.onerror = () => {
    es.close();
    if (writer.es !== es) return;
    writer.es = null;
    if (writer.done) { writer.stream = "idle"; showConn(); return; }
    scheduleReconnect();
  };
}

async function scheduleReconnect() {
  const delay = Math.min(1000 * Math.pow(1.5, writer.attempts), 5000);
  writer.attempts++;
  writer.stream = "reconnecting";
  showConn();
  const jobId = writer.jobId;
  writer.timer = setTimeout(async () => {
    const r = await sg.api("GET", "/api/generation/" + encodeURIComponent(jobId), undefined, sg.writerAuth());
    // Another job is watched now (submitted while this look was under way).
    if (writer.jobId !== jobId) return;
    if (r.status === 404) {
      writer.stream = "idle"; showConn();
      $("stage").textContent = "작업을 찾을 수 없습니다 · job not found";
      return;
    }
    if (r.status === 0 || r.status >= 500) { scheduleReconnect(); return; }
    connect();
  }, delay);
}

function onEvent(e) {
  const seq = Number(e.lastEventId);
  let ev;
  try { ev = JSON.parse(e.data); } catch (x) { return; }
  if (seq <= writer.lastSeq) { writer.duplicates.push(seq); return; }
  if (seq !== writer.lastSeq + 1) writer.gaps.push([writer.lastSeq, seq]);
  writer.lastSeq = seq;
  writer.seqs.push(seq);
  writer.attempts = 0;
  const li = sg.el("li", { "data-seq": String(seq), "data-type": ev.type, "data-stage": ev.stage || "" },
    sg.el("code", {}, "#" + seq), " " + ev.type + " · " + ev.status + (ev.stage ? " · " + ev.stage : "") +
    (ev.message ? " — " + ev.message : ""));
  $("event-log").append(li);
  $("event-count").textContent = String(writer.seqs.length);
  $("job-status").textContent = ev.status + " · " + (STATUS_KO[ev.status] || "");
  setProgress(ev.progress, ev.stage, ev.message);
  if (TERMINAL.has(ev.status)) {
    writer.done = true;
    stopWatching();
    writer.stream = "idle";
    showConn();
    sessionStorage.removeItem("scriptgen.job");
    finished(ev);
  }
}

function setProgress(pct, stage, message) {
  pct = Math.max(0, Math.min(100, Number(pct) || 0));
  $("progress-fill").style.width = pct + "%";
  $("progress-text").textContent = pct + "%";
  $("progressbar").setAttribute("aria-valuenow", String(pct));
  const ko = STAGE_KO[stage] ? STAGE_KO[stage] + " · " : "";
  $("stage").textContent = ko + (stage || "") + (message ? " — " + message : "");
  $("stage").dataset.stage = stage || "";
}

async function finished(ev) {
  if (ev.status !== "succeeded") {
    $("stage").textContent = (STATUS_KO[ev.status] || ev.status) + " · " + ev.status + (ev.message ? " — " + ev.message : "");
    return;
  }
  const n = ev.data && ev.data.episode_number;
  if (n) await showEpisode(writer.project, n);
  loadEpisodes();
}

// --- episodes --------------------------------------------------------------
async function showEpisode(project, n) {
  const r = await sg.api("GET", "/api/projects/" + encodeURIComponent(project) + "/episodes/" + n, undefined, sg.writerAuth());
  $("script-card").hidden = false;
  if (!r.ok) {
    $("script-title").textContent = "대본 · Script";
    $("script").textContent = r.error;
    return;
  }
  $("script-title").textContent = "제" + r.body.number + "화 · Episode " + r.body.number + ": " + r.body.title;
  $("script-meta").textContent = project + " · " + sg.fmtTime(r.body.created_at) + " · job " + r.body.job_id;
  $("script").textContent = r.body.script;
  $("script").dataset.episode = String(r.body.number);
}

async function loadEpisodes() {
  const project = $("project").value.trim() || writer.project;
  const err = $("episodes-error");
  err.hidden = true;
  if (!project) return;
  $("episodes-project").textContent = project;
  const r = await sg.api("GET", "/api/projects/" + encodeURIComponent(project) + "/episodes?limit=200", undefined, sg.writerAuth());
  if (!r.ok) { err.textContent = r.error; err.hidden = false; return; }
  const items = (r.body && r.body.items) || [];
  if (items.length === 0) {
    $("episodes").replaceChildren(sg.el("li", { class: "empty" }, "아직 에피소드가 없습니다 · no episodes yet"));
    return;
  }
  $("episodes").replaceChildren(...items.map((e) => sg.el("li", {},
    sg.el("button", { type: "button", class: "link", onclick: () => showEpisode(project, e.number) },
      "제" + e.number + "화 #" + e.number + " — " + e.title))));
}

// --- start -----------------------------------------------------------------
$("episode-form").addEventListener("submit", submitEpisode);
$("load-episodes").addEventListener("click", loadEpisodes);
window.addEventListener("online", showConn);
window.addEventListener("offline", showConn);
fillProjects();
if (recentProjects()[0] && !$("project").value) $("project").value = recentProjects()[0];
sg.watchSystem((ok) => { writer.reachable = ok; showConn(); });
try {
  const resume = JSON.parse(sessionStorage.getItem("scriptgen.job") || "null");
  if (resume && resume.id) { $("project").value = resume.project; watch(resume.id, resume.project); }
} catch (e) { /* nothing to resume */ }

// --- the API key -----------------------------------------------------------
function showKeyState() {
  $("key-state").textContent = sg.writerKey() ? "키 저장됨 (이 탭) · key kept for this tab" : "키 없음 · no key (a server on loopback without keys needs none)";
}
$("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const k = $("api-key").value.trim();
  if (k) sessionStorage.setItem(sg.WRITER_KEY, k);
  $("api-key").value = "";
  showKeyState();
});
$("forget-key").addEventListener("click", () => { sessionStorage.removeItem(sg.WRITER_KEY); showKeyState(); });
showKeyState();
