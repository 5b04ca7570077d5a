// AutoGraph web UI: login, diagrams, DR dashboard. Plain DOM, no build step.
// Every value from the server is written with textContent (never innerHTML).
"use strict";

const state = { token: sessionStorage.getItem("autograph-token"),
                apiKey: sessionStorage.getItem("autograph-api-key") === "1" };

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function flash(message, ok) {
  const box = document.getElementById("flash");
  box.textContent = message;
  box.className = ok ? "ok" : "";
  box.hidden = !message;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers,
    body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  const type = response.headers.get("content-type") || "";
  if (type.includes("application/json")) data = await response.json();
  else if (type.startsWith("image/")) data = await response.blob();
  return { status: response.status, ok: response.ok, data };
}

function detail(result) {
  const d = result.data && result.data.detail;
  return (typeof d === "string" ? d : JSON.stringify(d || "")) || ("HTTP " + result.status);
}

function setToken(token, isApiKey) {
  state.token = token;
  state.apiKey = Boolean(isApiKey);
  if (token) {
    sessionStorage.setItem("autograph-token", token);
    sessionStorage.setItem("autograph-api-key", isApiKey ? "1" : "0");
  } else {
    sessionStorage.removeItem("autograph-token");
    sessionStorage.removeItem("autograph-api-key");
  }
}

function show(page) {
  for (const id of ["login", "diagrams", "dr"]) {
    document.getElementById("page-" + id).hidden = id !== page;
  }
  document.getElementById("logout").hidden = !state.token;
}

async function route() {
  const wanted = (location.hash || "#/diagrams").slice(2);
  if (!state.token) { show("login"); return; }
  if (wanted === "dr") { show("dr"); await loadDr(); return; }
  if (state.apiKey) { location.hash = "#/dr"; return; }
  show("diagrams");
  await loadDiagrams();
}

// Login ------------------------------------------------------------------------------------
async function onLogin(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await api("POST", "/api/auth/login",
    { email: form.get("email"), password: form.get("password") });
  if (!result.ok) { flash("Login failed: " + detail(result)); return; }
  setToken(result.data.access_token, false);
  flash("");
  const me = await api("GET", "/api/users/me");
  document.getElementById("who").textContent = me.ok ? me.data.email : "";
  await route();
}

async function onRegister(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await api("POST", "/api/auth/register",
    { email: form.get("email"), password: form.get("password") });
  flash(result.ok ? "Account created: log in." : "Registration failed: " + detail(result),
        result.ok);
}

async function onApiKey(event) {
  event.preventDefault();
  setToken(new FormData(event.target).get("key"), true);
  document.getElementById("who").textContent = "admin API key";
  location.hash = "#/dr";
  await route();
}

async function onLogout() {
  if (!state.apiKey) await api("POST", "/api/auth/logout");
  setToken(null);
  document.getElementById("who").textContent = "";
  await route();
}

// Diagrams ---------------------------------------------------------------------------------
async function loadDiagrams() {
  const result = await api("GET", "/api/diagrams");
  const body = document.querySelector("#diagram-table tbody");
  body.replaceChildren();
  if (result.status === 401) { setToken(null); await route(); return; }
  if (!result.ok) { flash("Diagrams unavailable: " + detail(result)); return; }
  for (const diagram of result.data.diagrams) {
    const row = el("tr");
    row.append(el("td", diagram.name), el("td", diagram.current_version),
               el("td", new Date(diagram.updated_at).toLocaleString()));
    const cell = el("td");
    const view = el("button", "Preview");
    view.type = "button";
    view.addEventListener("click", () => preview(diagram.id));
    cell.append(view);
    row.append(cell);
    body.append(row);
  }
}

async function preview(id) {
  const diagram = await api("GET", "/api/diagrams/" + encodeURIComponent(id));
  if (!diagram.ok) { flash("Cannot open: " + detail(diagram)); return; }
  const svg = await api("POST", "/api/render/svg",
    { canvas: diagram.data.canvas || {}, title: diagram.data.name });
  if (!svg.ok) { flash("Cannot render: " + detail(svg)); return; }
  const img = document.getElementById("preview-img");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(svg.data);
  document.getElementById("preview-title").textContent =
    diagram.data.name + " (version " + diagram.data.current_version + ")";
  document.getElementById("preview").hidden = false;
}

async function onCreate(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const result = await api("POST", "/api/diagrams", { name: form.get("name") });
  flash(result.ok ? "Diagram created." : "Create failed: " + detail(result), result.ok);
  if (result.ok) { event.target.reset(); await loadDiagrams(); }
}

async function onGenerate(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { prompt: form.get("prompt"), save: true };
  if (form.get("name")) body.name = form.get("name");
  const result = await api("POST", "/api/ai/generate", body);
  flash(result.ok ? "Generated " + result.data.node_count + " nodes."
                  : "Generation failed: " + detail(result), result.ok);
  if (result.ok) { await loadDiagrams(); await preview(result.data.diagram.id); }
}

// DR dashboard -----------------------------------------------------------------------------
function code(id, result) {
  document.getElementById(id).textContent =
    result.ok ? "" : "(" + result.status + ": " + detail(result) + ")";
}

function bytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

function describe(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  return JSON.stringify(value, null, 1);
}

async function loadDr() {
  const [status, backups, alerts] = await Promise.all([
    api("GET", "/api/admin/dr/status"), api("GET", "/api/admin/backup/list"),
    api("GET", "/api/admin/alerts")]);

  code("dr-status-code", status);
  const list = document.getElementById("dr-status");
  list.replaceChildren();
  if (status.ok && status.data) {
    for (const [key, value] of Object.entries(status.data)) {
      if (key === "sources" && Array.isArray(value)) {
        for (const source of value) {
          list.append(el("dt", source.kind + " " + source.source),
                      el("dd", source.status + (source.age_seconds != null ?
                        ", last backup " + Math.round(source.age_seconds) + " s ago" : "")
                        + (source.problems && source.problems.length ?
                        " — " + source.problems.join("; ") : ""), source.status));
        }
      } else {
        list.append(el("dt", key), el("dd", describe(value), key === "status" ? value : ""));
      }
    }
  }

  code("dr-backups-code", backups);
  const rows = document.querySelector("#dr-backups tbody");
  rows.replaceChildren();
  if (backups.ok && backups.data && Array.isArray(backups.data.backups)) {
    for (const b of backups.data.backups) {
      const row = el("tr");
      const verification = (b.verification && b.verification.status) || "";
      row.append(el("td", b.name), el("td", b.kind), el("td", b.created_at),
                 el("td", bytes(b.size_bytes)), el("td", verification, verification),
                 el("td", (b.tags || []).join(", ")), el("td", (b.locations || []).join(", ")));
      rows.append(row);
    }
  }

  code("dr-alerts-code", alerts);
  const items = document.getElementById("dr-alerts");
  items.replaceChildren();
  if (alerts.ok && alerts.data) {
    const shown = [...(alerts.data.active || []), ...(alerts.data.recent || [])];
    const seen = new Set();
    for (const alert of shown) {
      const id = alert.key + alert.started_at;
      if (seen.has(id)) continue;
      seen.add(id);
      items.append(el("li", "[" + alert.status + "] " + alert.severity + " " + alert.key +
                            ": " + alert.message + " (since " + alert.started_at + ")",
                      alert.status));
    }
    if (!shown.length) items.append(el("li", "No alerts.", "ok"));
  }
}

// Wiring -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("login-form").addEventListener("submit", onLogin);
  document.getElementById("register-form").addEventListener("submit", onRegister);
  document.getElementById("apikey-form").addEventListener("submit", onApiKey);
  document.getElementById("logout").addEventListener("click", onLogout);
  document.getElementById("create-form").addEventListener("submit", onCreate);
  document.getElementById("generate-form").addEventListener("submit", onGenerate);
  document.getElementById("dr-refresh").addEventListener("click", loadDr);
  window.addEventListener("hashchange", route);
  route();
});
