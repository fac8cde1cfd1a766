// Shared by the writer's and the operator's pages: calling the API and the
// connection indicator.
"use strict";

const sg = {};

// sg.api calls the HTTP API and returns {ok, status, body, text}; it never
// throws, so that each caller can show what failed.
sg.api = async function (method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}) };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    return { ok: false, status: 0, body: null, text: "", error: "network error: " + e.message };
  }
  const text = await res.text().catch(() => "");
  let parsed = null;
  try { parsed = text ? JSON.parse(text) : null; } catch (e) { parsed = null; }
  let error = "";
  if (!res.ok) {
    const msg = parsed && parsed.error && (parsed.error.message || parsed.error.code);
    error = method + " " + path + " → " + res.status + (msg ? ": " + msg : "");
    if (res.status === 401) error += path.startsWith("/api/admin/") ? " (토큰 확인 · check the admin token)" : " (API 키 확인 · check the API key)";
    if (res.status === 403) error += " (관리 API 꺼짐: 서버에 ADMIN_TOKEN 없음 · admin API off: no ADMIN_TOKEN on the server)";
    if (res.status === 404) error += " (이 서버에 없는 기능 · not available on this server)";
  }
  return { ok: res.ok, status: res.status, body: parsed, text, error };
};

// sg.writerKey is the writer's API key, kept in sessionStorage (gone when
// the tab closes); sg.writerAuth the header that carries it.
sg.WRITER_KEY = "scriptgen.apiKey";
sg.writerKey = function () { return sessionStorage.getItem(sg.WRITER_KEY) || ""; };
sg.writerAuth = function (headers) {
  const h = Object.assign({}, headers || {});
  if (sg.writerKey()) h.Authorization = "Bearer " + sg.writerKey();
  return h;
};

// sg.newKey makes an Idempotency-Key in the browser; crypto.randomUUID needs a
// secure context, getRandomValues does not.
sg.newKey = function () {
  if (window.crypto && crypto.randomUUID && window.isSecureContext) return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
};

// The connection indicator: live / reconnecting / offline, and the worker mode.
sg.conn = {
  labels: { live: "실시간 · live", reconnecting: "재연결 중 · reconnecting", offline: "오프라인 · offline" },
  set(state, extra) {
    const el = document.getElementById("conn");
    if (!el) return;
    el.dataset.state = state;
    document.getElementById("conn-text").textContent = this.labels[state] + (extra ? " " + extra : "");
  },
};

// sg.watchSystem polls system-info for the worker mode and reachability;
// onState(reachable) lets the page combine it with its stream's state.
sg.watchSystem = function (onState) {
  const tick = async () => {
    const r = await sg.api("GET", "/api/generation/system-info");
    const mode = document.getElementById("worker-mode");
    if (r.ok && r.body && r.body.worker_system) {
      mode.textContent = r.body.worker_system.type;
      onState(true);
    } else {
      onState(false);
    }
  };
  tick();
  return setInterval(tick, 3000);
};

sg.el = function (tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e[k] = v;
  }
  for (const c of children) e.append(c);
  return e;
};

sg.fmtTime = function (s) {
  if (!s) return "—";
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toLocaleString();
};
