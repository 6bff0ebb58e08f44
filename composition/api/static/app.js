// sealscope page shell: sign-in, hash router, role-aware navigation, language switch, the
// API wrapper and the live event hub. No build step, no CDN: the browser loads these ES
// modules as they are.
//
// THE VIEW CONTRACT. A view is an ES module in static/views/<name>.js that exports default
//
//   {
//     route: "fleet",            // first segment of the hash: #/fleet, #/device/<id>, ...
//     title: "title",            // key into its own strings: the nav label and page title
//     strings: { en: {...}, "zh-CN": {...} },   // its texts, looked up with ctx.t(key);
//                                // kept under the route, so two views may both say "title"
//     roles: ["operator", "admin"],   // optional: org kinds that see it in the nav and may
//                                     // open it (default: every signed-in caller)
//     nav: true,                 // optional: false keeps a detail page out of the nav
//     render(root, ctx),         // draw into root (a cleared <main>); may be async; may
//                                // return a function, called when the view is left
//   }
//
// and is listed once in VIEWS below. `ctx` holds:
//   api(path, {method, body, query})  fetch wrapper: JSON in/out, CSRF header on unsafe
//                                      methods, throws Error(message) on a non-2xx answer
//   t(key, vars)                       the current language's text ("{n} devices")
//   fmt                                locale formatting: number, fixed, unit, percent,
//                                      date, time, dateTime, ago, duration (i18n.js)
//   locale                             "zh-CN" or "en"
//   who                                {name, org_kind, org_id, via}
//   params                             hash segments after the route, decoded
//   query                              URLSearchParams of the hash's ?query
//   go(hash)                           navigate, e.g. go("#/device/ACME-1")
//   live.on(type, fn)                  "alert" (AlertPublic JSON), "reading" ({device_id, t,
//                                      values}), "poll" (a tick while no stream is up);
//                                      handlers are removed when the view is left
//   rerender()                         draw the view again (e.g. after a language switch)
//   signal                             an AbortSignal that fires when the view is left
// Views build DOM with dom.js `el`/`svg` (textContent only) and charts with charts.js.

import { BREAKPOINTS } from "./charts.js";
import { el } from "./dom.js";
import * as i18n from "./i18n.js";
import fleet from "./views/fleet.js";
import device from "./views/device.js";
import alerts from "./views/alerts.js";
import risk from "./views/risk.js";
import report from "./views/report.js";
import region from "./views/region.js";
import fleetByModel from "./views/fleet_by_model.js";

export const VIEWS = [fleet, device, alerts, risk, report, region, fleetByModel];
const HOME = { operator: "fleet", admin: "fleet", monitoring_point: "risk",
               manufacturer: "fleet-by-model" };  // others: the first view they may open

const API = "/api/v1";
const $ = (id) => document.getElementById(id);

export const SHELL_STRINGS = {
  en: {
    "signIn.title": "Sign in", "signIn.username": "Username", "signIn.password": "Password",
    "signIn.submit": "Sign in", "signOut": "Sign out",
    "live.on": "● live", "live.poll": "○ refreshing every {s} s",
    "view.missing": "Nothing here: {route}.", "view.error": "This page failed: {message}",
    "org.operator": "technician", "org.manufacturer": "manufacturer",
    "org.monitoring_point": "monitoring point", "org.admin": "admin",
  },
  "zh-CN": {
    "signIn.title": "登录", "signIn.username": "用户名", "signIn.password": "密码",
    "signIn.submit": "登录", "signOut": "退出",
    "live.on": "● 实时", "live.poll": "○ 每 {s} 秒刷新",
    "view.missing": "页面不存在：{route}。", "view.error": "页面出错：{message}",
    "org.operator": "运维技术员", "org.manufacturer": "制造商",
    "org.monitoring_point": "监测站", "org.admin": "管理员",
  },
};
i18n.register(SHELL_STRINGS);
// a view's keys live under its route ("fleet.title"); ctx.t looks there first, then in the
// shared keys (alert_card.js, the shell's own)
function prefixed(prefix, strings) {
  const out = {};
  for (const [l, table] of Object.entries(strings || {})) {
    out[l] = Object.fromEntries(Object.entries(table).map(([k, v]) => [`${prefix}.${k}`, v]));
  }
  return out;
}
for (const v of VIEWS) i18n.register(prefixed(v.route, v.strings));
const viewT = (view) => (key, vars) => {
  const own = `${view.route}.${key}`;
  return i18n.has(own) ? i18n.t(own, vars) : i18n.t(key, vars);
};

// -- API ---------------------------------------------------------------------------------

let csrfToken = null;
let who = null;

// Every error the API sends is {"error", "message"}; the thrown Error carries the message
// and the HTTP status. Unsafe methods carry the session's CSRF token.
export async function api(path, options = {}) {
  const method = (options.method || "GET").toUpperCase();
  const headers = { ...(options.headers || {}) };
  let body = options.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["content-type"] = "application/json";
  }
  if (!["GET", "HEAD"].includes(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let url = path.startsWith("/") ? path : `${API}/${path}`;
  if (options.query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(options.query)) {
      if (v === undefined || v === null || v === "") continue;
      for (const item of Array.isArray(v) ? v : [v]) q.append(k, item);
    }
    if ([...q].length) url += `?${q}`;
  }
  const response = await fetch(url, { method, headers, body, credentials: "same-origin",
                                      signal: options.signal });
  if (response.status === 401 && url !== `${API}/session`) showSignIn();
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (!response.ok) {
    const error = new Error(data && data.message ? data.message : response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

// -- live events -------------------------------------------------------------------------

// One EventSource for the page. If the stream cannot be opened (the server has none, or
// it keeps failing), views get a "poll" tick instead so they refresh on a timer.
const POLL_S = 15;
const handlers = new Set();  // {type, fn, owner}
let source = null, pollTimer = null, failures = 0, opened = 0;

function emit(type, data) {
  for (const h of [...handlers]) if (h.type === type) {
    try { h.fn(data); } catch (e) { console.warn("live handler failed", e); }
  }
}

function setLiveBadge(mode) {
  const badge = $("live");
  badge.hidden = !mode;
  badge.dataset.mode = mode || "";
  badge.textContent = mode === "stream" ? i18n.t("live.on")
    : mode === "poll" ? i18n.t("live.poll", { s: POLL_S }) : "";
}

function startPolling() {
  if (pollTimer) return;
  setLiveBadge("poll");
  pollTimer = setInterval(() => emit("poll", {}), POLL_S * 1000);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = null;
}

function openStream() {
  closeStream();
  if (!("EventSource" in window)) { startPolling(); return; }
  source = new EventSource(`${API}/stream`, { withCredentials: true });
  source.addEventListener("open", () => {
    failures = 0;
    stopPolling();
    setLiveBadge("stream");
    // a reconnect: catch up on what happened while disconnected
    if (opened++ > 0) emit("poll", {});
  });
  for (const type of ["alert", "reading"]) {
    source.addEventListener(type, (event) => {
      try { emit(type, JSON.parse(event.data)); } catch (e) { console.warn("bad event", e); }
    });
  }
  source.addEventListener("error", () => {
    // EventSource retries by itself while readyState is CONNECTING; CLOSED means the
    // server refused (e.g. 404, 401): poll, and try the stream again later
    failures += 1;
    startPolling();
    if (source && source.readyState === EventSource.CLOSED) {
      closeStream();
      if (who) setTimeout(() => { if (who && !source) openStream(); },
                          Math.min(60, 5 * failures) * 1000);
    }
  });
}

function closeStream() {
  if (source) source.close();
  source = null;
}

// -- routing -----------------------------------------------------------------------------

let leave = null;  // cleanup of the view on screen
let renderSeq = 0;

function allowed(view) {
  return who && (!view.roles || view.roles.includes(who.org_kind));
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, queryString] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { route: parts[0] || "", params: parts.slice(1),
           query: new URLSearchParams(queryString || "") };
}

function homeRoute() {
  const preferred = HOME[who.org_kind];
  const first = VIEWS.find((v) => v.nav !== false && allowed(v));
  return preferred && VIEWS.some((v) => v.route === preferred && allowed(v))
    ? preferred : first ? first.route : "";
}

function drawNav(active) {
  $("nav").replaceChildren(...VIEWS.filter((v) => v.nav !== false && allowed(v)).map((v) =>
    el("a", { href: `#/${v.route}`, class: v.route === active ? "active" : "" },
       viewT(v)(v.title))));
}

async function route() {
  if (!who) return;
  const { route: name, params, query } = parseHash();
  if (!name) { location.replace(`#/${homeRoute()}`); return; }
  if (typeof leave === "function") { try { leave(); } catch (e) { console.warn(e); } }
  leave = null;
  for (const h of [...handlers]) if (h.owner !== "app") handlers.delete(h);
  const seq = ++renderSeq;
  const controller = new AbortController();
  const root = $("view");
  root.replaceChildren();
  root.dataset.route = name;
  drawNav(name);
  const view = VIEWS.find((v) => v.route === name);
  if (!view || !allowed(view)) {
    root.append(el("p", { class: "error" }, i18n.t("view.missing", { route: name })));
    return;
  }
  const t = viewT(view);
  document.title = `${t(view.title)} · sealscope`;
  const ctx = {
    api: (path, options = {}) => api(path, { signal: controller.signal, ...options }),
    t, fmt: i18n.fmt, locale: i18n.locale(), who, params, query,
    go: (hash) => { location.hash = hash; },
    live: { on: (type, fn) => handlers.add({ type, fn, owner: seq }) },
    rerender: () => route(),
    signal: controller.signal,
  };
  root.classList.add("busy");
  try {
    const cleanup = await view.render(root, ctx);
    if (seq !== renderSeq) { if (typeof cleanup === "function") cleanup(); return; }
    leave = () => { controller.abort(); if (typeof cleanup === "function") cleanup(); };
  } catch (e) {
    if (seq === renderSeq && e.name !== "AbortError") {
      console.warn(e);
      root.append(el("p", { class: "error" }, i18n.t("view.error", { message: e.message })));
    }
    leave = () => controller.abort();
  } finally {
    if (seq === renderSeq) root.classList.remove("busy");
  }
}

// -- sign-in and language ------------------------------------------------------------------

function translateStatic() {
  document.documentElement.lang = i18n.locale();
  for (const node of document.querySelectorAll("[data-t]")) node.textContent = i18n.t(node.dataset.t);
  $("sign-out").textContent = i18n.t("signOut");
  $("lang").value = i18n.locale();
  if (who) $("who").textContent = `${who.name} · ${i18n.t(`org.${who.org_kind}`)}`;
  setLiveBadge($("live").dataset.mode);
}

function showSignIn() {
  who = null;
  csrfToken = null;
  closeStream();
  stopPolling();
  setLiveBadge(null);
  if (typeof leave === "function") leave();
  leave = null;
  $("view").hidden = true;
  $("view").replaceChildren();
  $("nav").replaceChildren();
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
}

function signedIn(me) {
  who = me;
  csrfToken = me.csrf_token || null;
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("view").hidden = false;
  translateStatic();
  openStream();
  route();
}

$("sign-in").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-in-note").textContent = "";
  try {
    const me = await api(`${API}/session`, {
      method: "POST", body: { username: $("username").value, password: $("password").value } });
    $("password").value = "";
    signedIn(me);
  } catch (e) {
    $("sign-in-note").textContent = e.message;
  }
});

$("sign-out").addEventListener("click", async () => {
  await api(`${API}/session`, { method: "DELETE" }).catch(() => null);
  showSignIn();
});

$("lang").addEventListener("change", () => {
  i18n.setLocale($("lang").value);
  translateStatic();
  route();
});

window.addEventListener("hashchange", route);
// charts are drawn for the screen's size class: redraw when the window crosses into another
// (never while printing: the paper's width crosses a breakpoint, and a redraw then would
// print an empty page)
let printing = false;
window.addEventListener("beforeprint", () => { printing = true; });
window.addEventListener("afterprint", () => { printing = false; });
let resized = null;
for (const query of BREAKPOINTS) {
  window.matchMedia(query).addEventListener("change", () => {
    clearTimeout(resized);
    resized = setTimeout(() => {
      if (!printing && !window.matchMedia("print").matches) route();
    }, 300);
  });
}
translateStatic();
api(`${API}/session`).then(signedIn, showSignIn);
