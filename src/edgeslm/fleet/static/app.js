// The fleet dashboard: reads the control plane's API with the operator's admin token (a Bearer header, like any
// client) and draws devices, rollouts with their gates, and telemetry as inline SVG. Text from the API is always
// set as textContent, never parsed as HTML.
"use strict";

const TOKEN_KEY = "edgeslm.adminToken";
const REFRESH_MS = 5000;
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#2b6cb0", "#c05621", "#2f855a", "#9b2c2c", "#6b46c1", "#b7791f", "#2c7a7b", "#97266d"];
const ACTIONS = { running: ["pause", "abort", "rollback"], paused: ["resume", "abort", "rollback"],
                  halted: ["rollback"], completed: ["rollback"], aborted: ["rollback"] };
let timer = null;
let bundles = {};

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function takeTokenFromFragment() {
  // #token=... : a link an operator opens; the fragment never reaches a server, and is cleared from the address bar
  const match = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Authorization": "Bearer " + token() };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    throw new ApiError(resp.status, (data.error && data.error.message) || ("HTTP " + resp.status));
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function when(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : "-"; }
function fmt(x, digits) { return x === null || x === undefined ? "-" : Number(x).toFixed(digits === undefined ? 3 : digits); }
function bundleName(sha) {
  if (!sha) return "-";
  const b = bundles[sha];
  return b ? `${b.name} ${b.release}/${b.variant}` : sha.slice(0, 12);
}

function showLogin(message) {
  clearInterval(timer);
  document.getElementById("app").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("status").textContent = "signed out";
}

function setStatus(text) { document.getElementById("status").textContent = text; }

// --- devices ---
function renderDevices(devices) {
  const body = document.querySelector("#devices tbody");
  body.replaceChildren(...devices.map((d) => el("tr", { "data-device": d.id },
    el("td", {}, d.name !== d.id ? `${d.name} (${d.id})` : d.id),
    el("td", {}, d.profile),
    el("td", { class: d.online ? "pass" : "fail" }, d.online ? "online" : "offline"),
    el("td", { class: "version" }, bundleName(d.active_bundle)),
    el("td", {}, bundleName(d.previous_bundle)),
    el("td", {}, when(d.last_seen_at)))));
  if (!devices.length) body.append(el("tr", {}, el("td", { colspan: "6" }, "no devices enrolled")));
}

// --- rollouts ---
function renderRollout(r) {
  const box = el("div", { class: "rollout", id: `rollout-${r.id}`, "data-state": r.state });
  box.append(el("h3", {}, `#${r.id} ${r.bundle} release ${r.release} \u2192 group ${r.group} `,
                el("span", { class: `state state-${r.state}` }, r.state.replace("_", " "))));
  if (r.halt_reason) box.append(el("p", { class: "halt-reason" }, "Halted: " + r.halt_reason));
  const counts = Object.entries(r.counts || {}).map(([k, v]) => `${v} ${k.replace("_", " ")}`).join(", ");
  box.append(el("p", {}, "Devices: " + (counts || "none")));
  const actions = el("div", { class: "actions" });
  for (const action of ACTIONS[r.state] || []) {
    const button = el("button", { type: "button", id: `${action}-${r.id}`, "data-action": action, "data-id": String(r.id) },
                      action === "rollback" ? "Roll back" : action[0].toUpperCase() + action.slice(1));
    button.addEventListener("click", () => act(r.id, action));
    actions.append(button);
  }
  box.append(actions);
  if (r.waves) {
    box.append(el("table", { class: "waves" },
      el("thead", {}, el("tr", {}, ...["Wave", "Kind", "Devices", "State", "Started", "Finished"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...r.waves.map((w) => el("tr", {}, el("td", {}, w.idx), el("td", {}, w.kind), el("td", {}, w.devices),
        el("td", {}, w.state), el("td", {}, when(w.started_at)), el("td", {}, when(w.finished_at)))))));
  }
  if (r.gates && r.gates.length) {
    box.append(el("table", { class: "gates" },
      el("thead", {}, el("tr", {}, ...["Gate", "Wave", "New", "Previous", "Threshold", "Result", "Why"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...r.gates.map((g) => el("tr", { "data-gate": g.gate },
        el("td", {}, g.gate), el("td", {}, g.wave_idx), el("td", {}, fmt(g.candidate)), el("td", {}, fmt(g.baseline)),
        el("td", {}, fmt(g.threshold)), el("td", { class: g.passed ? "pass" : "fail" }, g.passed ? "passed" : "failed"),
        el("td", {}, g.reason))))));
  }
  if (r.assignments) {
    const failed = r.assignments.filter((a) => a.state === "failed" || a.state === "rollback_failed" || a.state === "skipped");
    if (failed.length) {
      box.append(el("ul", { class: "device-failures" }, ...failed.map((a) => el("li", {}, `${a.device_id}: ${a.state}: ${a.reason || ""}`))));
    }
  }
  return box;
}

async function act(id, action) {
  setStatus(`${action} rollout ${id}...`);
  try {
    await api("POST", `/v1/rollouts/${id}/${action}`, { reason: `${action} from the dashboard` });
    await refresh();
  } catch (err) {
    if (err.status === 401) return showLogin("the admin token was refused; sign in again");
    setStatus(`${action} failed: ${err.message}`);
  }
}

// --- telemetry plots ---
function plot(title, series, unit) {
  const W = 420, H = 160, PAD = 34;
  const points = series.flatMap((s) => s.points);
  const box = el("div", { class: "plot", "data-plot": title });
  box.append(el("div", {}, title));
  if (!points.length) {
    box.append(el("div", {}, "no data yet"));
    return box;
  }
  const x0 = Math.min(...points.map((p) => p[0])), x1 = Math.max(...points.map((p) => p[0]));
  const y1 = Math.max(...points.map((p) => p[1])) || 1;
  const sx = (x) => PAD + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * (W - PAD - 6);
  const sy = (y) => H - 18 - (y / y1) * (H - 30);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("role", "img");
  const line = (attrs) => { const n = document.createElementNS(SVG, "line"); for (const k in attrs) n.setAttribute(k, attrs[k]); return n; };
  const text = (x, y, s) => { const n = document.createElementNS(SVG, "text"); n.setAttribute("x", x); n.setAttribute("y", y);
    n.setAttribute("font-size", "10"); n.textContent = s; return n; };
  svg.append(line({ x1: PAD, y1: H - 18, x2: W - 6, y2: H - 18, stroke: "#999" }), line({ x1: PAD, y1: 8, x2: PAD, y2: H - 18, stroke: "#999" }));
  svg.append(text(2, 14, fmt(y1, 2)), text(2, H - 20, "0"), text(PAD, H - 4, when(x0)), text(W - 70, H - 4, when(x1)));
  series.forEach((s, i) => {
    const poly = document.createElementNS(SVG, "polyline");
    poly.setAttribute("fill", "none");
    poly.setAttribute("stroke", COLORS[i % COLORS.length]);
    poly.setAttribute("stroke-width", "1.5");
    poly.setAttribute("data-device", s.device);
    poly.setAttribute("points", s.points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
    svg.append(poly);
  });
  box.append(svg);
  const legend = el("div", { class: "legend" });
  series.forEach((s, i) => {
    const span = el("span", {}, `\u25a0 ${s.device}`);
    span.style.color = COLORS[i % COLORS.length];  // CSSOM, which the CSP allows (an inline style attribute it does not)
    legend.append(span);
  });
  box.append(legend);
  box.append(el("div", {}, unit));
  return box;
}

function renderPlots(rows) {
  const byDevice = {};
  for (const r of rows) (byDevice[r.device_id] = byDevice[r.device_id] || []).push(r);
  const series = (value) => Object.entries(byDevice).map(([device, list]) => ({
    device, points: list.filter((r) => value(r) !== null && value(r) !== undefined).map((r) => [r.window_end, value(r)]) }));
  document.getElementById("plots").replaceChildren(
    plot("p90 latency", series((r) => (r.requests ? r.latency_p90_ms : null)), "milliseconds, per telemetry window"),
    plot("requests", series((r) => r.requests), "requests per window"),
    plot("error rate", series((r) => (r.requests ? r.errors / r.requests : null)), "share of requests that failed"),
    plot("probe accuracy", series((r) => r.probe_accuracy), "of the active version, measured at activation"));
}

// --- the page ---
async function refresh() {
  try {
    const who = await api("GET", "/v1/whoami");
    if (who.kind !== "admin") return showLogin("this page needs the operator's admin token, not a device's");
    const since = Date.now() / 1000 - 3600;
    const [b, devices, list, telemetry] = await Promise.all([
      api("GET", "/v1/bundles"), api("GET", "/v1/devices"), api("GET", "/v1/rollouts?limit=10"),
      api("GET", `/v1/telemetry?since=${since.toFixed(0)}&limit=5000`)]);
    bundles = Object.fromEntries(b.bundles.map((x) => [x.sha256, x]));
    const details = await Promise.all(list.rollouts.map((r) => api("GET", `/v1/rollouts/${r.id}`)));
    document.getElementById("login").hidden = true;
    document.getElementById("app").hidden = false;
    document.getElementById("logout").hidden = false;
    renderDevices(devices.devices);
    const box = document.getElementById("rollouts");
    box.replaceChildren(...details.map(renderRollout));
    if (!details.length) box.append(el("p", {}, "no rollouts yet"));
    renderPlots(telemetry.telemetry);
    setStatus(`${devices.devices.length} devices, ${details.length} rollouts; updated ${new Date().toLocaleTimeString()}`);
    document.body.setAttribute("data-loaded", "1");
  } catch (err) {
    if (err.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      return showLogin("the admin token was refused");
    }
    setStatus("cannot reach the control plane: " + err.message);
  }
}

function start() {
  clearInterval(timer);
  refresh();
  timer = setInterval(refresh, REFRESH_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  takeTokenFromFragment();
  document.getElementById("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = document.getElementById("token");
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = "";
    start();
  });
  document.getElementById("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin("");
  });
  window.addEventListener("hashchange", () => {  // a link with #token=... opened in a tab already on this page
    if (/(?:^#|&)token=/.test(location.hash)) {
      takeTokenFromFragment();
      start();
    }
  });
  if (token()) start(); else showLogin("");
});
