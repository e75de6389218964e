// Health and controls page: polls /api/health; admins get the listener controls.

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

async function control(method, action, body) {
  const response = await fetch(`/api/control/${action}`, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const reply = await response.json().catch(() => ({}));
  document.getElementById("control-result").textContent = `${method} ${action}: HTTP ${response.status}\n${JSON.stringify(reply, null, 2)}`;
  return { ok: response.ok, reply };
}

function figuresText(figures) {
  const parts = [];
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [key, inner] of Object.entries(value)) walk(prefix ? `${prefix}.${key}` : key, inner);
    } else if (parts.length < 12) {
      parts.push(`${prefix}=${typeof value === "number" ? Math.round(value * 100) / 100 : value}`);
    }
  };
  walk("", figures || {});
  return parts.join("  ");
}

function renderHealth(body) {
  const tbody = document.querySelector("#components tbody");
  tbody.textContent = "";
  for (const c of body.components) {
    const tr = tbody.insertRow();
    tr.className = `status-${c.status}`;
    const cells = [c.service, c.instance, c.version, c.status, c.age_seconds === null ? "\u2013" : `${c.age_seconds.toFixed(1)}s`, figuresText(c.figures)];
    cells.forEach((text, index) => {
      const td = tr.insertCell();
      td.textContent = text;
      if (index === 4) td.className = "num";
      if (index === 5) td.className = "figures-text";
    });
  }
  if (!body.components.length) {
    const td = tbody.insertRow().insertCell();
    td.colSpan = 6;
    td.textContent = "No heartbeats yet.";
  }
  const error = document.getElementById("health-error");
  error.hidden = !body.error;
  error.textContent = body.error || "";
  document.getElementById("health-meta").textContent = new Date().toLocaleTimeString();
  const controls = document.getElementById("controls");
  controls.hidden = !body.controls.allowed;
  const note = document.getElementById("controls-note");
  note.textContent = body.controls.available ? "" : "The SCP has no listener control URL/token configured.";
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
  await refresh();
  setInterval(refresh, REFRESH_MS);
}

main();
