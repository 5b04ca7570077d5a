// AutoGraph web UI: routing, log in / register / operator key, log out. Plain DOM, no build.
"use strict";

import { api, busy, flash, state } from "./api.js";
import { loadDiagrams, openEditor, wireDiagrams } from "./diagrams.js";
import { startConsole, stopConsole, wireConsole } from "./console.js";

const PAGES = ["login", "diagrams", "editor", "dr"];

function show(page) {
  for (const id of PAGES) document.getElementById("page-" + id).hidden = id !== page;
  const signedIn = Boolean(state.token) || state.operator;
  document.getElementById("logout").hidden = !signedIn;
  document.getElementById("nav-diagrams").hidden = state.operator && !state.token;
  if (page !== "dr") stopConsole();
}

function who(text) { document.getElementById("who").textContent = text || ""; }

async function route() {
  const wanted = (location.hash || "#/diagrams").slice(2);
  if (wanted === "dr") {
    if (!state.operator) { show("login"); document.getElementById("operator-box").open = true; return; }
    show("dr");
    await startConsole();
    return;
  }
  if (!state.token) { show("login"); return; }
  if (wanted.startsWith("diagram/")) {
    show("editor");
    await openEditor(decodeURIComponent(wanted.slice("diagram/".length)));
    return;
  }
  show("diagrams");
  await loadDiagrams();
}

// A 401 anywhere: that session is gone, so forget it and show the login form.
state.onUnauthorized = (admin) => {
  if (admin) state.operator = false; else state.token = null;
  if (!state.token && !state.operator) who("");
  flash(admin ? "The DR console session has ended: enter the admin API key again."
              : "Your session has ended: please log in again.");
  show("login");
};

async function onLogin(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  await busy(form.querySelector("button"), async () => {
    const result = await api("POST", "/api/auth/login",
      { body: { email: data.get("email"), password: data.get("password") }, quiet401: true });
    if (!result.ok) { flash("Login failed: " + result.error); return; }
    state.token = result.data.access_token;
    form.reset();
    flash("");
    const me = await api("GET", "/api/users/me");
    who(me.ok ? me.data.email : "");
    if (!location.hash.startsWith("#/diagram")) location.hash = "#/diagrams";
    await route();
  });
}

async function onRegister(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  await busy(form.querySelector("button"), async () => {
    const result = await api("POST", "/api/auth/register",
      { body: { email: data.get("email"), password: data.get("password") } });
    if (result.ok) form.reset();
    flash(result.ok ? "Account created: log in." : "Registration failed: " + result.error, result.ok);
  });
}

async function onApiKey(event) {
  event.preventDefault();
  const form = event.target;
  const input = form.querySelector("input[name=key]");
  await busy(form.querySelector("button"), async () => {
    const key = input.value;
    input.value = "";  // the key is sent once and never kept
    const result = await api("POST", "/api/admin/session", { auth: key, quiet401: true });
    if (!result.ok) { flash("The key was refused: " + result.error); return; }
    state.operator = true;
    flash("");
    who(result.data.actor);
    location.hash = "#/dr";
    await route();
  });
}

async function onLogout() {
  await stopConsole();
  if (state.operator) await api("DELETE", "/api/admin/session", { quiet401: true });
  if (state.token) {
    const result = await api("POST", "/api/auth/logout", { quiet401: true });
    if (!result.ok && result.status !== 401) {
      flash("Logging out on the server failed (" + result.error + "); this page forgot the session anyway.");
    }
  }
  state.token = null;
  state.operator = false;
  who("");
  location.hash = "#/diagrams";
  show("login");
}

async function resumeOperator() {
  // The console's cookie survives a reload (the page itself holds no secret).
  const result = await api("GET", "/api/admin/session");
  if (result.ok && result.data.actor) { state.operator = true; who(result.data.actor); }
}

document.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("login-form").addEventListener("submit", onLogin);
  document.getElementById("register-form").addEventListener("submit", onRegister);
  document.getElementById("apikey-form").addEventListener("submit", onApiKey);
  const logout = document.getElementById("logout");
  logout.addEventListener("click", () => busy(logout, onLogout));
  wireDiagrams();
  wireConsole();
  window.addEventListener("hashchange", route);
  await resumeOperator();
  await route();
});
