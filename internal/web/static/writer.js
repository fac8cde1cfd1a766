// The writer's page: submit an episode, follow its event stream and watch
// the script being written, read, copy and download the finished script,
// browse the project's episodes.
"use strict";

const STATUS_KO = { queued: "대기 중", running: "생성 중", succeeded: "완료", failed: "실패", cancelled: "취소됨" };
const STAGE_KO = { queued: "대기", started: "시작", outline: "개요", scenes: "장면", dialogue: "대사", polish: "다듬기", done: "완료" };
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

// writer is the page's state; tests read it (seqs, duplicates, gaps, states,
// script, connects, final).
const writer = {
  jobId: "", project: "", lastSeq: 0, seqs: [], duplicates: [], gaps: [],
  es: null, attempts: 0, timer: null, done: false,
  stream: "idle", // idle | live | reconnecting
  reachable: false, states: [],
  connects: 0, // event streams opened for this job
  final: false, // the final event came: the stream is over
  // The script as it is written: the texts of the job's script events, each
  // at its offset in characters (code points, as the API counts them).
  script: "", scriptChars: 0,
  scriptSeqs: [], // script events that added text
  scriptRepeats: [], // script events whose text was shown already
  scriptGaps: [], // [chars shown, offset] of script events past the end
  refetches: 0, // GET ?include=script after a gap
  pending: [], refetching: false,
  view: "none", // what #script shows: none | live | episode
  episode: null, // the episode shown: {project, number, title, script}
  streamedMatches: null, // the streamed text equals the saved episode
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
  Object.assign(writer, {
    jobId, project, lastSeq: 0, seqs: [], duplicates: [], gaps: [], attempts: 0, done: false, connects: 0, final: false,
    script: "", scriptChars: 0, scriptSeqs: [], scriptRepeats: [], scriptGaps: [], refetches: 0, pending: [],
    refetching: false, streamedMatches: null,
  });
  sessionStorage.setItem("scriptgen.job", JSON.stringify({ id: jobId, project }));
  $("job-card").hidden = false;
  $("script-card").hidden = true;
  $("show-live").hidden = true;
  showLive();
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
  writer.connects++;
  let heard = false;
  // An open stream proves the server answers, whatever the last look at
  // system-info said (it may have been taken while the server was down).
  es.onopen = () => { writer.stream = "live"; writer.reachable = true; showConn(); };
  // The stream's events (docs/design.md section 7); "failed" is a failed
  // job's end ("error" is EventSource's own, for a lost connection).
  for (const type of ["status", "progress", "result", "failed", "script"]) {
    es.addEventListener(type, (e) => { heard = true; onEvent(e); });
  }
  // EventSource would reconnect by itself at a fixed delay; the earlier client's hook (docs/runbook.md, appendix A)
  // backs off 1.5× up to 5 s and resumes from the last event id, so do that.
  es.onerror = () => {
    // CLOSED: the server answered without a stream — 204 No Content for a
    // finished job whose last event this page has, or an error status;
    // CONNECTING: a stream that broke.
    const refused = es.readyState === EventSource.CLOSED && !heard;
    es.close();
    if (writer.es !== es) return;
    writer.es = null;
    if (writer.done) { writer.stream = "idle"; showConn(); return; }
    scheduleReconnect(refused);
  };
}

// scheduleReconnect looks at the job after a backoff and follows its stream
// again from the last event, unless the job is finished and its stream had
// nothing more for this page (refused): then it ends from the job's state.
async function scheduleReconnect(refused) {
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
    if (r.status === 0 || r.status >= 500) { scheduleReconnect(refused); return; }
    if (refused && r.ok && r.body && TERMINAL.has(r.body.status)) { finishFromJob(r.body); return; }
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
  if (e.type === "script") {
    const n = typeof ev.text === "string" ? Array.from(ev.text).length : 0;
    $("event-log").append(sg.el("li", { "data-seq": String(seq), "data-type": "script", "data-stage": "" },
      sg.el("code", {}, "#" + seq), " script · +" + n + "자 @" + ev.offset));
    $("event-count").textContent = String(writer.seqs.length);
    applyScript(seq, ev.offset, ev.text);
    return;
  }
  const li = sg.el("li", { "data-seq": String(seq), "data-type": ev.type, "data-stage": ev.stage || "" },
    sg.el("code", {}, "#" + seq), " " + ev.type + " · " + ev.status + (ev.stage ? " · " + ev.stage : "") +
    (ev.message ? " — " + ev.message : ""));
  $("event-log").append(li);
  $("event-count").textContent = String(writer.seqs.length);
  $("job-status").textContent = ev.status + " · " + (STATUS_KO[ev.status] || "");
  setProgress(ev.progress, ev.stage, ev.message);
  // The final event ends the stream: nothing follows, so no reconnect.
  if (ev.final || TERMINAL.has(ev.status)) {
    writer.final = !!ev.final;
    endStream();
    finished(ev);
  }
}

function endStream() {
  writer.done = true;
  stopWatching();
  writer.stream = "idle";
  showConn();
  sessionStorage.removeItem("scriptgen.job");
}

// finishFromJob ends the watch from the job's own state, when its stream
// had nothing more to send (204: this page has its last event).
function finishFromJob(j) {
  endStream();
  $("job-status").textContent = j.status + " · " + (STATUS_KO[j.status] || "");
  setProgress(j.progress, j.stage, j.error);
  let data = j.result;
  if (typeof data === "string") { try { data = JSON.parse(data); } catch (x) { data = null; } }
  finished({ status: j.status, message: j.error, data });
}

// --- the script as it is written -------------------------------------------
// applyScript puts a script event's text at its offset: a text that ends at
// or before what is shown repeats it and is ignored; one that starts beyond
// it leaves a gap, filled from GET /api/generation/{id}?include=script.
function applyScript(seq, offset, text) {
  if (typeof offset !== "number" || typeof text !== "string") return;
  const chars = Array.from(text);
  const end = offset + chars.length;
  if (end <= writer.scriptChars) { writer.scriptRepeats.push(seq); return; }
  if (offset > writer.scriptChars) {
    writer.scriptGaps.push([writer.scriptChars, offset]);
    writer.pending.push({ seq, offset, text });
    refetchScript(0);
    return;
  }
  writer.scriptSeqs.push(seq);
  appendScript(chars.slice(writer.scriptChars - offset).join(""), end);
}

function appendScript(add, chars) {
  writer.script += add;
  writer.scriptChars = chars;
  if (writer.view !== "live") return;
  const pre = $("script");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  $("script-card").hidden = false;
  pre.append(document.createTextNode(add));
  if (atEnd) pre.scrollTop = pre.scrollHeight;
  showLiveMeta();
}

// refetchScript reads the script so far, keeps it if it is longer than what
// is shown, and applies the events that waited for it.
function refetchScript(delay) {
  if (writer.refetching) return;
  writer.refetching = true;
  const jobId = writer.jobId;
  setTimeout(async () => {
    writer.refetches++;
    const r = await sg.api("GET", "/api/generation/" + encodeURIComponent(jobId) + "?include=script", undefined, sg.writerAuth());
    if (writer.jobId !== jobId) return;
    writer.refetching = false;
    if (!r.ok || !r.body || typeof r.body.script !== "string") { refetchScript(1000); return; }
    const chars = Array.from(r.body.script);
    if (chars.length > writer.scriptChars) {
      if (r.body.script.startsWith(writer.script)) {
        appendScript(r.body.script.slice(writer.script.length), chars.length);
      } else { // the API's text is the script
        writer.script = r.body.script;
        writer.scriptChars = chars.length;
        if (writer.view === "live") { $("script").textContent = writer.script; showLiveMeta(); }
      }
    }
    const pending = writer.pending;
    writer.pending = [];
    for (const p of pending) {
      if (p.offset > writer.scriptChars) { writer.pending.push(p); continue; }
      applyScript(p.seq, p.offset, p.text);
    }
    if (writer.pending.length) refetchScript(500);
  }, delay);
}

// showLive shows the script being written in #script.
function showLive() {
  writer.view = "live";
  writer.episode = null;
  $("script-actions").hidden = true;
  $("show-live").hidden = true;
  $("script-title").textContent = "대본 · Script — 작성 중 · writing";
  $("script").textContent = writer.script;
  $("script").classList.add("writing");
  delete $("script").dataset.episode;
  $("script-card").hidden = writer.scriptChars === 0;
  showLiveMeta();
}

function showLiveMeta() {
  $("script-meta").textContent = writer.project + " · job " + writer.jobId + " · " + writer.scriptChars.toLocaleString() + "자 · characters so far";
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
  $("script").classList.remove("writing");
  if (ev.status !== "succeeded") {
    $("stage").textContent = (STATUS_KO[ev.status] || ev.status) + " · " + ev.status + (ev.message ? " — " + ev.message : "");
    if (writer.view === "live" && writer.scriptChars > 0) $("script-title").textContent = "대본 (미완성) · Unfinished script";
    return;
  }
  const n = ev.data && ev.data.episode_number;
  if (n) {
    await showEpisode(writer.project, n);
    // The saved episode is the script; what streamed should be the same.
    if (writer.episode && writer.episode.number === n) writer.streamedMatches = writer.script === writer.episode.script;
  }
  loadEpisodes();
}

// --- episodes --------------------------------------------------------------
async function showEpisode(project, n) {
  const r = await sg.api("GET", "/api/projects/" + encodeURIComponent(project) + "/episodes/" + n, undefined, sg.writerAuth());
  writer.view = "episode";
  writer.episode = null;
  $("script-card").hidden = false;
  $("script").classList.remove("writing");
  $("script-actions").hidden = true;
  $("copy-state").textContent = "";
  // A job still being written can be shown again.
  $("show-live").hidden = writer.done || !writer.jobId;
  if (!r.ok) {
    $("script-title").textContent = "대본 · Script";
    $("script").textContent = r.error;
    return;
  }
  writer.episode = { project, number: r.body.number, title: r.body.title, script: r.body.script };
  $("script-title").textContent = "제" + r.body.number + "화 · Episode " + r.body.number + ": " + r.body.title;
  $("script-meta").textContent = project + " · " + sg.fmtTime(r.body.created_at) + " · job " + r.body.job_id;
  $("script").textContent = r.body.script;
  $("script").dataset.episode = String(r.body.number);
  $("script-actions").hidden = false;
}

// --- copy and download -----------------------------------------------------
// The copy and the .txt are the episode's script as the API sent it; the
// .fountain is that script converted (fountain.js).
function exportName(ext) {
  const e = writer.episode;
  return (e.project + "-ep" + e.number).replace(/[^A-Za-z0-9._-]/g, "_") + ext;
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/plain;charset=utf-8" }));
  const a = sg.el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

async function copyScript() {
  if (!writer.episode) return;
  const text = writer.episode.script;
  let ok = false;
  try {
    await navigator.clipboard.writeText(text);
    ok = true;
  } catch (e) { // no clipboard API (an insecure origin): select and copy
    const ta = sg.el("textarea", { value: text, readOnly: true });
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.append(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch (x) { ok = false; }
    ta.remove();
  }
  $("copy-state").textContent = ok ? "복사됨 · copied" : "복사 실패 · copy failed";
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
$("copy-script").addEventListener("click", copyScript);
$("download-txt").addEventListener("click", () => { if (writer.episode) download(exportName(".txt"), writer.episode.script); });
$("download-fountain").addEventListener("click", () => {
  if (writer.episode) download(exportName(".fountain"), sgFountain.toFountain(writer.episode.script, writer.episode.title));
});
$("show-live").addEventListener("click", showLive);
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
