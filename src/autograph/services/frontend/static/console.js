// The DR console: one tile per protected source (age of its newest copy against the RPO),
// alerts, drills, jobs, every backup of every kind with filters, schedules, the audit log.
// Refreshes every 15 s while the tab is visible.
"use strict";

import { ago, api, button, bytes, cells, duration, el, when } from "./api.js";
import { acknowledge, actionsFor, onChange, wireActions } from "./console_actions.js";
import { renderDrillChart, renderDrillRun, wireDrills } from "./console_drills.js";
import { loadRecovery, startRecoveryPanel, stopRecoveryPanel } from "./console_recovery.js";
import { renderTiles } from "./console_tiles.js";

const REFRESH_MS = 15000;
const view = { backups: [], timer: null, loading: null, again: false, loadedAt: 0, running: false };

function renderAlerts(alerts, acks) {
  const list = document.getElementById("dr-alerts");
  list.replaceChildren();
  if (!alerts) return;
  const active = alerts.active || [];
  for (const alert of active) {
    const ack = acks[alert.key];
    const item = el("li", null, "alert " + alert.severity);
    item.append(el("strong", alert.severity + " · " + alert.key), el("div", alert.message),
                el("div", "since " + when(alert.started_at) + " (" + ago(alert.started_at) + ")", "hint"));
    if (ack) {
      const silenced = ack.silenced_until && new Date(ack.silenced_until) > new Date();
      item.append(el("div", "acknowledged by " + ack.by + " " + ago(ack.at) +
                            (silenced ? ", silenced until " + when(ack.silenced_until) : ""), "hint"));
    }
    const actions = el("span", null, "buttons");
    actions.append(button("Acknowledge", () => acknowledge(alert, 0)),
                   button("Silence 1 h", () => acknowledge(alert, 60)));
    item.append(actions);
    list.append(item);
  }
  if (!active.length) list.append(el("li", "No active alerts.", "ok"));
  for (const alert of (alerts.recent || []).filter((a) => a.status === "resolved").slice(0, 5)) {
    list.append(el("li", "resolved " + ago(alert.resolved_at) + ": " + alert.key + " — " + alert.message, "hint"));
  }
}

function renderDrills(drills, status) {
  const body = document.querySelector("#dr-drills tbody");
  body.replaceChildren();
  const schedule = status && status.drills;
  const last = drills && drills[0];
  document.getElementById("dr-drill-summary").textContent =
    (last ? "Last drill " + ago(last.finished_at) + ": " + (last.passed ? "passed" : "FAILED") +
            ", RTO " + duration(last.rto_seconds) + ", RPO " + duration(last.rpo_seconds) + ". "
          : "No drill recorded yet. ") +
    (schedule ? "Next drill " + (schedule.overdue ? "overdue since " : "due ") + when(schedule.next_scheduled) + "." : "");
  for (const drill of drills || []) {
    let link = "—";
    if (drill.has_report) {
      link = el("a", "report");
      link.href = "/api/admin/drills/" + drill.id + "/report";
      link.target = "_blank";
      link.rel = "noopener";
    }
    body.append(cells(el("tr"), [when(drill.finished_at), drill.scenario + " (" + drill.mode + ")",
      el("span", drill.passed ? "passed" : "failed", drill.passed ? "passed" : "failed"),
      duration(drill.rto_seconds), duration(drill.rpo_seconds), link]));
  }
}

function renderSchedules(status) {
  const body = document.querySelector("#dr-schedules tbody");
  body.replaceChildren();
  if (!status) return;
  for (const s of status.sources) {
    body.append(cells(el("tr"), [s.kind + " " + s.source, duration(s.interval_seconds),
      s.next_scheduled_run ? when(s.next_scheduled_run) : (status.scheduler_enabled ? "—" : "scheduler off"),
      s.last_success ? ago(s.last_success.finished_at) : "never"]));
  }
  for (const s of status.snapshots || []) {
    body.append(cells(el("tr"), ["snapshot " + s.bucket, duration(s.interval_seconds), "continuous",
                                 s.taken_at ? ago(s.taken_at) : "never"]));
  }
}

function filters() {
  const value = (id) => document.getElementById(id).value;
  return { kind: value("f-kind"), source: value("f-source"), verification: value("f-verification"),
           search: value("f-search").trim().toLowerCase() };
}

export function renderBackups() {
  const f = filters();
  const body = document.querySelector("#dr-backups tbody");
  body.replaceChildren();
  const shown = view.backups.filter((b) =>
    (!f.kind || b.kind === f.kind) && (!f.source || b.source === f.source) &&
    (!f.verification || b.verification === f.verification) &&
    (!f.search || b.name.toLowerCase().includes(f.search) || b.tags.some((t) => t.toLowerCase().includes(f.search))));
  for (const b of shown) {
    const row = cells(el("tr"), [b.name, b.kind, b.source, ago(b.created_at), bytes(b.size_bytes)]);
    row.dataset.name = b.name;
    row.dataset.kind = b.kind;
    row.append(el("td", b.verification.replace("_", " "), b.verification));
    cells(row, [b.tags.join(", "), b.locations.length + " (" + b.locations.join(", ") + ")", actionsFor(b)]);
    body.append(row);
  }
  const kinds = new Set(view.backups.map((b) => b.kind));
  document.getElementById("dr-backup-count").textContent = shown.length + " of " +
    view.backups.length + " backups (" + [...kinds].join(", ") + ")";
}

function fillSelect(id, values, keepFirst) {
  const select = document.getElementById(id);
  const current = select.value;
  const first = keepFirst ? [select.options[0]] : [];
  select.replaceChildren(...first);
  for (const v of values) { const o = el("option", v); o.value = v; select.append(o); }
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function renderAudit(entries) {
  const body = document.querySelector("#dr-audit tbody");
  body.replaceChildren();
  for (const e of entries || []) {
    body.append(cells(el("tr"), [when(e.at), e.actor, e.action, e.target,
      el("span", e.result + " (" + e.status + ")" + (e.detail ? ": " + e.detail : ""),
         e.result === "ok" || e.result === "accepted" ? "passed" : "failed")]));
  }
}

// Each part is drawn as soon as its answer arrives: a slow status never hides the backups.
async function load() {
  const problems = [];
  const note = (result) => { if (!result.ok && result.status !== 401) problems.push(result.error); return result; };
  const get = (path) => api("GET", path).then(note);
  const status = get("/api/admin/dr/status");
  const wal = get("/api/admin/wal");
  const parts = [
    Promise.all([status, wal]).then(([s, w]) => {
      renderTiles(s.ok ? s.data : null, w.ok ? w.data : null);
      renderSchedules(s.ok ? s.data : null);
      if (s.ok) fillSelect("act-bucket", s.data.sources.filter((x) => x.kind === "bucket").map((x) => x.source), false);
    }),
    Promise.all([get("/api/admin/alerts"), api("GET", "/api/admin/alerts/acks")]).then(([a, k]) =>
      renderAlerts(a.ok ? a.data : null, k.ok ? k.data : {})),
    Promise.all([get("/api/admin/drills"), status]).then(([d, s]) => {
      renderDrills(d.ok ? d.data : [], s.ok ? s.data : null);
      renderDrillChart(d.ok ? d.data : [], s.ok ? s.data : null);
    }),
    get("/api/admin/drills/run").then((r) => renderDrillRun(r.ok ? r.data : null)),
    loadRecovery(),
    get("/api/admin/audit?limit=30").then((a) => renderAudit(a.ok ? a.data : [])),
    get("/api/admin/backups").then((b) => {
      if (!b.ok) return;
      for (const [where, why] of Object.entries(b.data.unreachable || {})) problems.push(where + " unreachable: " + why);
      view.backups = b.data.backups;
      fillSelect("f-source", [...new Set(view.backups.map((x) => x.source))].sort(), true);
      renderBackups();
    }),
  ];
  await Promise.all(parts);
  const box = document.getElementById("dr-problems");
  box.textContent = problems.join(" · ");
  box.hidden = !problems.length;
  view.loadedAt = Date.now();
  stamp();
}

function stamp() {
  document.getElementById("dr-refreshed").textContent = "updated " +
    duration((Date.now() - view.loadedAt) / 1000) + " ago · refreshes every 15 s" +
    (document.hidden ? " (paused while hidden)" : "");
}

// One load at a time; a refresh asked for while one runs (a job just ended) loads again after
// it, so the page never settles on data older than the change.
export async function refresh() {
  if (view.loading) { view.again = true; return view.loading; }
  view.loading = (async () => {
    do { view.again = false; await load(); } while (view.again);
  })().finally(() => { view.loading = null; });
  return view.loading;
}

function tick() {
  if (!view.running || document.hidden) return;
  if (Date.now() - view.loadedAt >= REFRESH_MS) refresh(); else stamp();
}

export async function startConsole() {
  view.running = true;
  startRecoveryPanel();
  if (!view.timer) view.timer = setInterval(tick, 1000);
  await refresh();
}

// Stops the polling; the promise settles once a load in flight has ended (log out waits for it,
// so no request of the ended session is answered 401).
export function stopConsole() {
  view.running = false;
  view.again = false;
  stopRecoveryPanel();
  if (view.timer) { clearInterval(view.timer); view.timer = null; }
  return view.loading || Promise.resolve();
}

async function prunePlan() {
  const list = document.getElementById("dr-prune");
  list.replaceChildren(el("li", "asking…", "hint"));
  const plan = await api("GET", "/api/admin/prune/plan");
  list.replaceChildren();
  if (!plan.ok) { list.append(el("li", "Dry run failed: " + plan.error, "failed")); return; }
  const gone = plan.data.decisions.filter((d) => d.outcome === "would remove");
  if (!gone.length) list.append(el("li", "Nothing: every backup is kept (" + plan.data.decisions.length + " checked).", "ok"));
  for (const d of gone) list.append(el("li", d.kind + " " + d.name + ": " + d.reasons.join("; ")));
}

export function wireConsole() {
  const refreshButton = document.getElementById("dr-refresh");
  refreshButton.addEventListener("click", async () => {
    refreshButton.disabled = true;
    try { await refresh(); } finally { refreshButton.disabled = false; }
  });
  for (const id of ["f-kind", "f-source", "f-verification", "f-search"]) {
    document.getElementById(id).addEventListener("input", renderBackups);
  }
  const pruneButton = document.getElementById("dr-prune-plan");
  pruneButton.addEventListener("click", async () => {
    pruneButton.disabled = true;
    try { await prunePlan(); } finally { pruneButton.disabled = false; }
  });
  document.addEventListener("visibilitychange", tick);
  onChange(refresh);
  wireDrills(refresh);
  wireActions(() => document.getElementById("act-bucket").value);
}
