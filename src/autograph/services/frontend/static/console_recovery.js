// DR console: the recovery running now, step by step (GET /api/admin/recovery/live), polled
// every 3 s while one runs. During a complete recovery the gateway itself may be down: the
// panel then says the API is unreachable and greys the last steps seen as "not live".
"use strict";

import { api, cells, duration, el, when } from "./api.js";

const LIVE_MS = 3000;
const live = { timer: null, lastOk: null, downSince: null, state: "none", active: false };

function render(result) {
  const line = document.getElementById("dr-recovery-state");
  const table = document.getElementById("dr-recovery-steps");
  const body = table.querySelector("tbody");
  if (!result.ok && result.status !== 401) {
    live.downSince = live.downSince || new Date();
    line.className = "failed";
    line.textContent = "The admin API is unreachable since " + live.downSince.toLocaleTimeString() +
      " (" + result.error + "); during a complete recovery the gateway is stopped too. " +
      (live.lastOk ? "The steps below were last seen at " + live.lastOk.toLocaleTimeString() +
                     " and are NOT live; `autograph dr recover` shows the progress."
                   : "No recovery state could be read.");
    table.classList.add("stale");
    table.hidden = !live.lastOk;
    return;
  }
  if (!result.ok) return;
  const data = result.data;
  live.downSince = null;
  live.lastOk = new Date();
  live.state = data.state;
  table.classList.remove("stale");
  body.replaceChildren();
  table.hidden = data.state === "none";
  line.className = data.state === "running" ? "hint" : data.state === "interrupted" ? "failed" : "ok";
  if (data.state === "none") { line.textContent = "No recovery running."; return; }
  line.textContent = (data.state === "running" ? "Recovery (" + (data.scenario || "?") + ") running since " +
    when(data.started_at) + ", live as of " + live.lastOk.toLocaleTimeString() + "."
    : "Interrupted recovery (" + (data.scenario || "?") + ", not running): " + data.message);
  for (const step of data.steps) {
    const row = cells(el("tr"), [step.name]);
    row.dataset.step = step.name;
    row.append(el("td", step.status, step.status));
    cells(row, [step.started_at ? when(step.started_at) : "—",
                step.duration_seconds === null ? "—" : duration(step.duration_seconds) +
                  (step.status === "running" ? " so far" : ""), step.detail]);
    body.append(row);
  }
}

// One read; keeps polling every 3 s while a recovery runs (or the API is down after one ran).
export async function loadRecovery() {
  const result = await api("GET", "/api/admin/recovery/live");
  render(result);
  const keep = live.active && (live.state === "running" || live.downSince !== null);
  if (keep && !live.timer) live.timer = setInterval(() => { if (!document.hidden) loadRecovery(); }, LIVE_MS);
  if (!keep && live.timer) { clearInterval(live.timer); live.timer = null; }
}

export function startRecoveryPanel() { live.active = true; }

export function stopRecoveryPanel() {
  live.active = false;
  if (live.timer) { clearInterval(live.timer); live.timer = null; }
}
