// DR console, drills: RTO and RPO over time as inline SVG (built with DOM calls, no library,
// nothing inline for the CSP to refuse), the sandbox drill button with its job, and the stop.
"use strict";

import { api, duration, el, flash } from "./api.js";
import { confirmTyped, runJob } from "./console_actions.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 340, H = 150, LEFT = 48, RIGHT = 10, TOP = 12, BOTTOM = 24;

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

// One chart: a metric of every drill that measured it, against its target (dashed line).
function chart(label, key, target, drills) {
  const points = drills.filter((d) => typeof d[key] === "number")
    .map((d) => ({ t: new Date(d.finished_at).getTime(), v: d[key], d }))
    .sort((a, b) => a.t - b.t);
  const figure = el("figure", null, "chart");
  figure.dataset.metric = key;
  const top = Math.max(target || 0, ...points.map((p) => p.v), 1) * 1.1;
  const t0 = points.length ? points[0].t : 0, t1 = points.length ? points[points.length - 1].t : 1;
  const x = (t) => (t1 === t0 ? (LEFT + W - RIGHT) / 2 : LEFT + (t - t0) / (t1 - t0) * (W - LEFT - RIGHT));
  const y = (v) => H - BOTTOM - v / top * (H - TOP - BOTTOM);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": label + " over time" });
  root.append(svg("title", {}, label + " of each drill, target " + duration(target)));
  root.append(svg("line", { x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM, class: "axis" }),
              svg("line", { x1: LEFT, y1: TOP, x2: LEFT, y2: H - BOTTOM, class: "axis" }),
              svg("text", { x: LEFT - 4, y: H - BOTTOM, class: "tick end" }, "0"),
              svg("text", { x: LEFT - 4, y: TOP + 8, class: "tick end" }, duration(top)));
  if (typeof target === "number") {
    const line = svg("line", { x1: LEFT, y1: y(target), x2: W - RIGHT, y2: y(target), class: "target" });
    line.append(svg("title", {}, "target " + duration(target)));
    root.append(line, svg("text", { x: W - RIGHT, y: y(target) - 3, class: "tick end target-label" },
                          "target " + duration(target)));
  }
  if (points.length > 1) {
    root.append(svg("polyline", { points: points.map((p) => x(p.t) + "," + y(p.v)).join(" "), class: "trend" }));
  }
  for (const p of points) {
    const met = typeof target !== "number" || p.v <= target;
    const dot = svg("circle", { cx: x(p.t), cy: y(p.v), r: 4, class: "point " + (p.d.passed && met ? "passed" : "failed") });
    dot.append(svg("title", {}, new Date(p.t).toLocaleString() + ": " + label + " " + duration(p.v) +
                               " (" + p.d.scenario + ", " + (p.d.passed ? "passed" : "failed") + ")"));
    root.append(dot);
  }
  if (points.length) {
    root.append(svg("text", { x: LEFT, y: H - 6, class: "tick" }, new Date(t0).toLocaleDateString()));
    if (t1 !== t0) root.append(svg("text", { x: W - RIGHT, y: H - 6, class: "tick end" }, new Date(t1).toLocaleDateString()));
  } else {
    root.append(svg("text", { x: (LEFT + W) / 2, y: H / 2, class: "tick middle" }, "no drill measured it yet"));
  }
  const missing = drills.length - points.length;
  figure.append(root, el("figcaption", label + ": " + points.length + " drill(s)" +
                                       (missing ? ", " + missing + " not measured" : "") +
                                       (typeof target === "number" ? "; target " + duration(target) : "")));
  return figure;
}

export function renderDrillChart(drills, status) {
  const box = document.getElementById("dr-drill-chart");
  box.replaceChildren();
  const list = drills || [];
  box.append(chart("RTO", "rto_seconds", status ? status.rto_target_seconds : null, list),
             chart("RPO", "rpo_seconds", status ? status.rpo_target_seconds : null, list));
}

// What runs under the proof lock (a drill or restore tests), with a stop for a drill.
export function renderDrillRun(running) {
  const line = document.getElementById("dr-drill-running");
  const start = document.getElementById("dr-drill-run");
  line.replaceChildren();
  const busy = Boolean(running && running.running);
  start.disabled = busy;
  start.title = busy ? "one drill or restore test at a time" : "";
  if (!busy) return;
  line.append(el("span", (running.is_drill ? "A sandbox drill" : "The " + running.operation) +
                         " is running since " + new Date(running.since).toLocaleTimeString() +
                         (running.started_by ? " (started by " + running.started_by + ")" : "") +
                         (running.stop_requested ? "; stopping…" : "."), "hint"));
  if (running.is_drill && !running.stop_requested) {
    const stop = el("button", "Stop drill", "danger");
    stop.type = "button";
    stop.id = "dr-drill-stop";
    stop.addEventListener("click", async () => {
      stop.disabled = true;
      const result = await api("DELETE", "/api/admin/drills/run");
      flash(result.ok ? "Stopping the drill: its sandbox is removed." : "Stop failed: " + result.error, result.ok);
      if (result.ok) renderDrillRun(result.data);
    });
    line.append(" ", stop);
  }
}

export function wireDrills(afterStart) {
  const start = document.getElementById("dr-drill-run");
  start.addEventListener("click", async () => {
    start.disabled = true;
    const ok = await confirmTyped({
      title: "Run a sandbox drill",
      text: "A drill of the complete scenario runs in a sandbox: a stack of its own (own " +
            "folder and ports) is loaded, backed up, destroyed and recovered, and RTO and RPO " +
            "are measured. Production is not touched; the drill takes several minutes of " +
            "(niced) CPU and disk. Its report joins the drill history.",
      expected: "drill" });
    if (!ok) { start.disabled = false; return; }
    await runJob("sandbox drill", "POST", "/api/admin/drills/run", afterStart);
  });
}
