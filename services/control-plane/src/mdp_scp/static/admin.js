// Health and controls page: polls /api/health; admins get the listener and runtime controls.

import * as fmt from "./format.js";
import { MarketClock } from "./market.js";

const REFRESH_MS = 3000;
let csrf = "";

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function send(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  document.getElementById("control-result").textContent = `${method} ${path}: HTTP ${response.status}\n${JSON.stringify(reply, null, 2)}`;
  return { ok: response.ok, reply };
}

const control = (method, action, body) => send(method, `/api/control/${action}`, body);

// Pause/resume/drain: every instance, or one ("*" or a heartbeat instance id).
const runtime = (component, command, instance) =>
  send("POST", `/api/admin/runtime/${component}/${command}`, { instance });

function runtimeButtons(component, commands, instance) {
  const span = document.createElement("span");
  span.className = "buttons runtime-buttons";
  for (const command of Object.keys(commands)) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = instance === "*" ? `${command} all` : command;
    button.dataset.component = component;
    button.dataset.command = command;
    button.dataset.instance = instance;
    if (command !== "resume") button.className = "danger";
    button.addEventListener("click", () => runtime(component, command, instance).then(refresh));
    span.append(button);
  }
  return span;
}

let runtimeShown = "";

function renderRuntime(commands) {
  // Rebuilt only when the commands change, so a click is never lost to a refresh.
  const key = JSON.stringify(commands);
  if (key === runtimeShown) return;
  runtimeShown = key;
  const box = document.getElementById("runtime");
  box.textContent = "";
  for (const [component, known] of Object.entries(commands)) {
    const row = document.createElement("p");
    row.className = "runtime-row";
    row.dataset.component = component;
    const name = document.createElement("strong");
    name.textContent = `${component} `;
    row.append(name, runtimeButtons(component, known, "*"));
    box.append(row);
  }
}

const SVG = "http://www.w3.org/2000/svg";
const OK_STATES = new Set(["running", "streaming"]);
const WARN_STATES = new Set(["stale", "degraded", "backing_off", "connecting", "waiting_for_session", "paused", "pausing", "draining"]);
const DOWN_STATES = new Set(["gone", "unreadable"]);

function stateClass(state) {
  if (OK_STATES.has(state)) return "state-ok";
  if (WARN_STATES.has(state)) return "state-warn";
  if (DOWN_STATES.has(state)) return "state-down";
  return "state-off";
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "\u2013";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

function freshness(seconds) {
  if (seconds === null || seconds === undefined) return "\u2013";
  return seconds < 10 ? `${seconds.toFixed(2)}s` : duration(seconds);
}

function rateCell(td, c) {
  if (c.rate_per_second === null || c.rate_per_second === undefined) {
    td.textContent = "\u2013";
    return;
  }
  const value = c.rate_per_second;
  td.textContent = value >= 100 ? Math.round(value).toLocaleString("en-US") : value.toFixed(1);
  const unit = document.createElement("span");
  unit.className = "unit";
  unit.textContent = c.rate_unit || "/s";
  td.append(unit);
}

function sparkline(values) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 120 22");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  if (!values || values.length < 2) {
    svg.setAttribute("aria-label", "not enough beats yet");
    return svg;
  }
  const top = Math.max(...values) || 1;
  const step = 120 / (values.length - 1);
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(21 - (v / top) * 20).toFixed(1)}`);
  const line = document.createElementNS(SVG, "polyline");
  line.setAttribute("points", points.join(" "));
  svg.append(line);
  svg.setAttribute("aria-label", `rate over the last minutes, peak ${top.toFixed(1)}`);
  return svg;
}

function renderHealth(body) {
  const runtimeCommands = (body.controls.allowed && body.controls.runtime) || {};
  for (const th of document.querySelectorAll("#components .admin-only")) th.hidden = !body.controls.allowed;
  const tbody = document.querySelector("#components tbody");
  tbody.textContent = "";
  for (const c of body.components) {
    const tr = tbody.insertRow();
    const state = c.state || c.status;
    tr.className = `status-${state}`;
    tr.dataset.service = c.service;
    tr.dataset.instance = c.instance;
    const text = (value, className) => {
      const td = tr.insertCell();
      td.textContent = value;
      if (className) td.className = className;
      return td;
    };
    text(c.service, "service");
    text(c.instance, "instance");
    const badge = document.createElement("span");
    badge.className = `state ${stateClass(state)}`;
    badge.textContent = state;
    if (c.error) badge.title = c.error;
    tr.insertCell().append(badge);
    tr.cells[2].className = "state-cell";
    text(c.version || "\u2013", "version");
    text(duration(c.uptime_seconds), "num uptime");
    text(freshness(c.freshness_seconds), "num freshness");
    const rate = tr.insertCell();
    rate.className = "num rate";
    rateCell(rate, c);
    const trend = tr.insertCell();
    trend.className = "trend";
    trend.append(sparkline(c.sparkline));
    text(c.age_seconds === null ? "\u2013" : `${c.age_seconds.toFixed(1)}s ago`, "num beat");
    if (body.controls.allowed) {
      const cell = tr.insertCell();
      cell.className = "control";
      const known = runtimeCommands[c.service];
      if (known) cell.append(runtimeButtons(c.service, known, c.instance));
    }
  }
  if (!body.components.length) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = body.controls.allowed ? 10 : 9;
    td.textContent = "No heartbeats yet.";
  }
  const error = document.getElementById("health-error");
  error.hidden = !body.error;
  error.textContent = body.error || "";
  // Exchange time like the dashboard, not the browser's local 12-hour clock.
  document.getElementById("health-meta").textContent = `updated ${fmt.clockEt(Date.now())}`;
  const controls = document.getElementById("controls");
  controls.hidden = !body.controls.allowed;
  const note = document.getElementById("controls-note");
  note.textContent = body.controls.available ? "" : "The SCP has no listener control URL/token configured.";
  document.getElementById("news-note").textContent = body.controls.news_available
    ? ""
    : "The SCP has no news listener control URL/token configured.";
  renderRuntime(runtimeCommands);
}

async function refresh() {
  const badge = document.getElementById("health-state");
  try {
    renderHealth(await getJson("/api/health"));
    badge.dataset.state = "live";
    badge.textContent = "live";
  } catch (error) {
    badge.dataset.state = "offline";
    badge.textContent = `error: ${error.message}`;
  }
}

async function main() {
  const session = await getJson("/api/me").catch(() => null);
  if (session) {
    csrf = session.csrf_token;
    document.getElementById("logout-csrf").value = csrf;
    document.getElementById("user").textContent = `${session.user} (${session.role})`;
  }
  document.getElementById("load-topics").addEventListener("click", async () => {
    const { ok, reply } = await control("GET", "subscriptions");
    if (ok && Array.isArray(reply.topics)) document.getElementById("topics").value = reply.topics.join(",");
  });
  document.getElementById("subscriptions-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const topics = event.target.elements.topics.value.split(",").map((t) => t.trim()).filter(Boolean);
    control("PUT", "subscriptions", { topics });
  });
  document.getElementById("feed-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const { feed, market } = event.target.elements;
    control("PUT", "feed", { feed: feed.value.trim(), market: market.value.trim() || "stocks" });
  });
  document.getElementById("start").addEventListener("click", () => control("POST", "start"));
  document.getElementById("stop").addEventListener("click", () => control("POST", "stop"));
  document.getElementById("news-state").addEventListener("click", () => control("GET", "news/state"));
  document.getElementById("news-start").addEventListener("click", () => control("POST", "news/start"));
  document.getElementById("news-stop").addEventListener("click", () => control("POST", "news/stop"));
  new MarketClock(document.getElementById("market-clock")).start();
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
