// DR console overview: one tile per protected source (the age of its newest copy against the
// RPO target), the off-site tier (lag, backlog, reachable) and the restore tests (last proven
// restore per kind against their interval), each coloured ok / warning / critical.
"use strict";

import { ago, duration, el } from "./api.js";

function level(age, rpo, serverLevel) {
  if (age === null || age === undefined || serverLevel === "critical") return "critical";
  if (age <= rpo) return "ok";
  return "warning";
}

function box(title, big, hint, lvl, lines) {
  const tile = el("div", null, "tile " + lvl);
  tile.append(el("h4", title), el("p", big, "age"), el("p", hint, "hint"));
  for (const line of lines) {
    if (line instanceof Node) tile.append(line);
    else if (line) tile.append(el("p", line, "detail"));
  }
  tile.dataset.level = lvl;
  return tile;
}

function tile(title, age, rpo, lvl, lines) {
  return box(title, age === null ? "no copy" : ago(new Date(Date.now() - age * 1000).toISOString()),
             age === null ? "nothing to recover from" :
               (lvl === "ok" ? "within" : "outside") + " the RPO of " + duration(rpo), lvl, lines);
}

function minAge(...ages) {
  const known = ages.filter((a) => typeof a === "number");
  return known.length ? Math.min(...known) : null;
}

// The off-site tier: its worst lag against the RPO (a machine loss loses what has not left),
// unreachable or no shipper running, or not configured at all.
export function offsiteTile(offsite, rpo) {
  if (!offsite) {
    return box("Off-site copy", "not configured", "every copy dies with this machine", "warning",
               ["set AUTOGRAPH_OFFSITE_S3_ENDPOINT to ship backups and WAL to another store"]);
  }
  const lag = offsite.max_lag_seconds;
  let lvl = "ok";
  if (!offsite.reachable || lag === null || lag > rpo) lvl = "critical";
  else if (!offsite.shipper_running) lvl = "warning";
  const backlog = offsite.kinds.reduce((n, k) => n + (k.backlog || 0), 0);
  const lines = [offsite.reachable ? "reachable: " + offsite.endpoint : "UNREACHABLE: " + (offsite.error || offsite.endpoint),
                 backlog + " cop" + (backlog === 1 ? "y" : "ies") + " waiting to leave",
                 offsite.shipper_running ? "shipper running" : "shipper not running",
                 offsite.encryption ? "encrypted (key " + (offsite.key_id || "?") + ")" : "NOT encrypted"];
  for (const k of offsite.kinds) {
    lines.push(k.kind + ": " + (k.lag_seconds === null ? "lag unknown" : "lag " + duration(k.lag_seconds)) +
               (k.backlog ? ", " + k.backlog + " waiting" : ""));
  }
  return box("Off-site copy", lag === null ? "lag unknown" : "lag " + duration(lag),
             (lvl === "critical" && offsite.reachable ? "over" : lvl === "ok" ? "within" : "against") +
               " the RPO of " + duration(rpo), lvl, lines);
}

// The restore tests: per kind, the last passed one against the interval they are due at
// (a day by default); never proven or a failed last attempt is critical.
export function proofTile(proven, interval) {
  if (!proven || !proven.length) return null;
  const every = interval || 86400;
  const levels = [];
  const lines = proven.map((p) => {
    const age = p.last_proven_at ? (Date.now() - new Date(p.last_proven_at).getTime()) / 1000 : null;
    let lvl = "ok";
    if (age === null || (p.last_status && p.last_status !== "passed")) lvl = "critical";
    else if (age > every * 1.5) lvl = "warning";
    levels.push(lvl);
    const line = el("p", p.kind + ": " + (age === null ? "never proven" : "proven " + ago(p.last_proven_at) +
      " (" + (p.method || "restore") + ", " + duration(p.duration_seconds) + ")") +
      (p.last_status && p.last_status !== "passed" ? "; last attempt " + p.last_status +
        (p.last_detail ? ": " + p.last_detail : "") : ""), "detail " + lvl);
    line.dataset.kind = p.kind;
    line.dataset.level = lvl;
    return line;
  });
  const lvl = levels.includes("critical") ? "critical" : levels.includes("warning") ? "warning" : "ok";
  const proved = proven.filter((p) => p.last_proven_at).map((p) => new Date(p.last_proven_at).getTime());
  const oldest = proved.length === proven.length ? Math.min(...proved) : null;
  return box("Restore tests", oldest === null ? "not all proven" : "oldest " + ago(new Date(oldest).toISOString()),
             "each kind restored and compared every " + duration(every) +
               (interval ? "" : " (not scheduled here)"), lvl, lines);
}

export function renderTiles(status, wal) {
  const tiles = document.getElementById("dr-tiles");
  tiles.replaceChildren();
  if (!status) return;
  const rpo = status.rpo_target_seconds;
  const walAges = Object.values((wal && wal.clusters) || {}).map((c) => c.newest_age_seconds);
  const walAge = minAge(...walAges);
  const dumps = status.sources.filter((s) => s.kind === "database");
  const bases = status.sources.filter((s) => s.kind === "basebackup");
  const baseOk = bases.some((s) => s.last_success);
  for (const dump of dumps) {
    const age = minAge(dump.age_seconds, baseOk ? walAge : null);
    tiles.append(tile("Database " + dump.source, age, rpo, level(age, rpo, dump.status), [
      "dump: " + (dump.last_success ? ago(dump.last_success.finished_at) : "none"),
      "base backup: " + (bases[0] && bases[0].last_success ? ago(bases[0].last_success.finished_at) : "none"),
      "WAL: " + (walAge === null ? "not streamed" : "newest segment " + duration(walAge) + " old"),
      ...dump.problems]));
  }
  tiles.append(tile("WAL stream", walAge, rpo, level(walAge, rpo, walAge === null ? "critical" : "ok"),
                    [walAges.length + " cluster(s)"]));
  const snaps = new Map((status.snapshots || []).map((s) => [s.bucket, s]));
  for (const bucket of status.sources.filter((s) => s.kind === "bucket")) {
    const snap = snaps.get(bucket.source);
    const age = minAge(bucket.age_seconds, snap ? snap.age_seconds : null);
    const worst = bucket.status === "critical" && !(snap && snap.status === "ok") ? "critical" : "ok";
    tiles.append(tile("Bucket " + bucket.source, age, rpo, level(age, rpo, worst), [
      "archive: " + (bucket.last_success ? ago(bucket.last_success.finished_at) : "none"),
      "snapshot: " + (snap && snap.taken_at ? ago(snap.taken_at) : "none"),
      ...bucket.problems]));
  }
  tiles.append(offsiteTile(status.offsite, rpo));
  const proofs = proofTile(status.proven, status.proof_interval_seconds);
  if (proofs) tiles.append(proofs);
  const overall = document.getElementById("dr-overall");
  overall.textContent = "overall: " + status.status;
  overall.className = "badge " + status.status;
}
