// User management and the audit log (admins): every call goes to the management API with the
// session's CSRF token; a generated password or token is shown once, then gone.

let csrf = "";

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text) node.textContent = text;
  return node;
}

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) {
    window.location.assign("/login");
    throw new Error("logged out");
  }
  let data = {};
  try {
    data = await response.json();
  } catch (error) {
    data = {};
  }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(message) {
  document.getElementById("users-notice").textContent = message;
}

function showSecret(label, value, id = "secret") {
  const box = document.getElementById(id);
  box.hidden = false;
  box.replaceChildren(el("span", {}, `${label}: `), el("code", { id: `${id}-value` }, value), el("span", {}, " (shown once)"));
}

function roleSelect(user) {
  const select = el("select", { "aria-label": `Role of ${user.name}`, "data-act": "role" });
  for (const role of ["viewer", "trader", "admin"]) {
    const option = el("option", { value: role }, role);
    if (role === user.role) option.selected = true;
    select.append(option);
  }
  select.disabled = user.source === "settings";
  select.addEventListener("change", () => change(user.name, { role: select.value }));
  return select;
}

function button(label, act, handler, disabled = false) {
  const node = el("button", { type: "button", "data-act": act }, label);
  node.disabled = disabled;
  node.addEventListener("click", handler);
  return node;
}

function userRow(user) {
  const tr = el("tr", { "data-user": user.name });
  const role = el("td");
  role.append(roleSelect(user));
  const actions = el("td", { class: "actions" });
  const fromSettings = user.source === "settings";
  actions.append(
    button(user.disabled ? "Enable" : "Disable", "toggle", () => change(user.name, { disabled: !user.disabled }), fromSettings),
    button("Reset password", "password", () => resetPassword(user.name), fromSettings || user.kind === "service"),
    button("End sessions", "sessions", () => endSessions(user.name)),
  );
  if (user.kind === "service") actions.append(button("New token", "token", () => newToken(user.name)));
  tr.append(
    el("td", { class: "name" }, user.name),
    role,
    el("td", {}, user.kind),
    el("td", { class: "state" }, user.disabled ? "disabled" : "active"),
    el("td", {}, user.source),
    actions,
  );
  return tr;
}

async function loadUsers() {
  const body = await api("GET", "/api/admin/users");
  document.querySelector("#user-table tbody").replaceChildren(...body.users.map(userRow));
  document.getElementById("users-meta").textContent = `${body.users.length}`;
}

async function change(name, values) {
  try {
    await api("PATCH", `/api/admin/users/${encodeURIComponent(name)}`, values);
    say(`${name} updated`);
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

async function resetPassword(name) {
  try {
    const body = await api("POST", `/api/admin/users/${encodeURIComponent(name)}/password`, {});
    showSecret(`New password of ${name}`, body.password);
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

async function endSessions(name) {
  try {
    const body = await api("DELETE", `/api/admin/users/${encodeURIComponent(name)}/sessions`);
    say(`${body.ended} session(s) of ${name} ended`);
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

async function newToken(name) {
  try {
    const body = await api("POST", `/api/admin/users/${encodeURIComponent(name)}/tokens`, { name: "token" });
    showSecret(`Token of ${name}`, body.token);
  } catch (error) {
    say(error.message);
  }
  await refresh();
}

function auditRow(entry) {
  const tr = el("tr", { "data-action": entry.action });
  tr.append(
    el("td", {}, new Date(entry.at * 1000).toLocaleString()),
    el("td", {}, entry.actor),
    el("td", {}, entry.action),
    el("td", {}, entry.target),
    el("td", {}, entry.result),
    el("td", {}, entry.address),
  );
  return tr;
}

async function loadAudit() {
  const form = document.getElementById("audit-filter");
  const query = new URLSearchParams();
  if (form.elements.user.value.trim()) query.set("user", form.elements.user.value.trim());
  if (form.elements.action.value.trim()) query.set("action", form.elements.action.value.trim());
  const body = await api("GET", `/api/admin/audit?${query}`);
  document.querySelector("#audit-table tbody").replaceChildren(...body.entries.map(auditRow));
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "never";
}

async function loadTokens() {
  const body = await api("GET", "/api/tokens");
  const rows = body.tokens.map((token) => {
    const tr = el("tr", { "data-token": token.id });
    const cell = el("td");
    if (token.revoked_at) cell.textContent = "revoked";
    else cell.append(button("Revoke", "revoke", () => revokeToken(token.id)));
    tr.append(
      el("td", {}, token.name),
      el("td", {}, token.role),
      el("td", {}, when(token.expires_at)),
      el("td", {}, when(token.last_used_at)),
      cell,
    );
    return tr;
  });
  document.querySelector("#token-table tbody").replaceChildren(...rows);
}

async function revokeToken(id) {
  try {
    await api("DELETE", `/api/tokens/${encodeURIComponent(id)}`);
  } catch (error) {
    say(error.message);
  }
  await loadTokens();
}

function bindTokens() {
  document.getElementById("new-token").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    const body = { name: form.elements.name.value.trim(), expires_in_days: Number(form.elements.days.value) };
    if (form.elements.role.value) body.role = form.elements.role.value;
    try {
      const made = await api("POST", "/api/tokens", body);
      showSecret(`Token ${body.name}`, made.token, "token-secret");
      form.elements.name.value = "";
    } catch (error) {
      say(error.message);
    }
    await loadTokens();
  });
}

async function refresh() {
  await Promise.all([loadUsers(), loadAudit()]);
}

async function main() {
  const state = document.getElementById("users-state");
  try {
    const me = await api("GET", "/api/me");
    csrf = me.csrf_token;
    document.getElementById("user").textContent = `${me.user} (${me.role})`;
    document.getElementById("logout-csrf").value = csrf;
    bindTokens();
    await loadTokens();
    if (me.role !== "admin") {
      for (const id of ["users", "audit"]) document.getElementById(id).style.display = "none";
      document.getElementById("tokens").insertAdjacentElement("afterbegin", document.getElementById("users-notice"));
      say("User management needs the admin role.");
      state.dataset.state = "live";
      state.textContent = "read only";
      return;
    }
    await refresh();
    state.dataset.state = "live";
    state.textContent = "ready";
  } catch (error) {
    say(error.message);
    state.textContent = "error";
    return;
  }
  document.getElementById("new-user").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.target;
    try {
      const body = await api("POST", "/api/admin/users", {
        name: form.elements.name.value.trim(),
        role: form.elements.role.value,
        kind: form.elements.kind.value,
      });
      if (body.password) showSecret(`Password of ${body.user.name}`, body.password);
      say(`${body.user.name} created`);
      form.reset();
    } catch (error) {
      say(error.message);
    }
    await refresh();
  });
  document.getElementById("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    loadAudit().catch((error) => say(error.message));
  });
}

main();
