// DR console actions: create / verify / pin / delete / restore as background jobs with
// progress, the typed-name confirmation for anything destructive, alert acknowledgement.
"use strict";

import { api, button, duration, el, flash } from "./api.js";

let afterChange = async () => {};
export function onChange(fn) { afterChange = fn; }

const q = encodeURIComponent;

// Start a wait=false call and follow its job until it ends, showing the step and progress.
export async function runJob(label, method, path, onStarted) {
  const list = document.getElementById("dr-jobs");
  const placeholder = list.querySelector(":scope > li.hint");
  if (placeholder) placeholder.remove();
  const item = el("li", null, "job");
  const title = el("strong", label);
  const bar = el("progress");
  bar.max = 1;
  const status = el("span", "starting…", "hint");
  item.append(title, " ", bar, " ", status);
  list.prepend(item);
  const started = await api(method, path);
  if (!started.ok) {
    bar.remove();
    status.textContent = "refused: " + started.error;
    status.className = "failed";
    return null;
  }
  if (started.status !== 202) {  // answered at once (no job)
    bar.value = 1;
    status.textContent = "done";
    status.className = "passed";
    await afterChange();
    return started.data;
  }
  const t0 = Date.now();
  item.dataset.jobId = started.data.job_id;
  if (onStarted) onStarted(started.data);
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    const job = await api("GET", "/api/admin/jobs/" + q(started.data.job_id));
    if (!job.ok) { status.textContent = "lost track of the job: " + job.error; status.className = "failed"; return null; }
    const j = job.data;
    if (typeof j.progress === "number") bar.value = j.progress; else bar.removeAttribute("value");
    status.textContent = (j.step || j.status) + " · " + duration((Date.now() - t0) / 1000);
    if (j.status === "running") continue;
    bar.value = 1;
    status.textContent = j.status === "succeeded" ? "succeeded in " + duration((Date.now() - t0) / 1000)
                                                  : "failed: " + (j.error || "unknown error");
    status.className = j.status === "succeeded" ? "passed" : "failed";
    await afterChange();
    return j.status === "succeeded" ? j.result : null;
  }
}

// The confirmation dialog: says what will change and asks to type a name before it runs.
export function confirmTyped({ title, text, expected, target }) {
  const dialog = document.getElementById("confirm");
  const input = document.getElementById("confirm-input");
  const ok = document.getElementById("confirm-ok");
  const targetLabel = document.getElementById("confirm-target-label");
  const targetInput = document.getElementById("confirm-target");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  targetLabel.hidden = target === undefined;
  targetInput.value = target || "";
  input.value = "";
  const wanted = () => (target === undefined ? expected : targetInput.value.trim());
  const refresh = () => {
    document.getElementById("confirm-expected").textContent = wanted() || "(a bucket name)";
    ok.disabled = !wanted() || input.value.trim() !== wanted();
  };
  refresh();
  return new Promise((resolve) => {
    const cancel = document.getElementById("confirm-cancel");
    const done = (value) => {
      input.removeEventListener("input", refresh);
      targetInput.removeEventListener("input", refresh);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      resolve(value);
    };
    const onCancel = () => done(null);
    const onClose = () => done(dialog.returnValue === "ok" && !ok.disabled ? wanted() : null);
    input.addEventListener("input", refresh);
    targetInput.addEventListener("input", refresh);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("close", onClose);
    ok.value = "ok";
    dialog.showModal();
    input.focus();
  });
}

const VERIFY = {
  database: (b) => "/api/admin/backup/verify?wait=false&backup_name=" + q(b.name),
  bucket: (b) => "/api/admin/minio/backup/verify?wait=false&backup_name=" + q(b.name),
  snapshot: (b) => "/api/admin/minio/snapshots/verify?snapshot_name=" + q(b.name),
};
const DELETE = {
  database: (b) => "/api/admin/backup/" + q(b.name),
  bucket: (b) => "/api/admin/minio/backup/" + q(b.name),
};

async function restore(b) {
  if (b.kind === "database") {
    const name = await confirmTyped({
      title: "Restore the database from " + b.name,
      text: "The database " + b.source + " is restored from this dump into a new database and " +
            "swapped in; the current one is kept for rollback. Writes made since " +
            new Date(b.created_at).toLocaleString() + " will be gone from the live database.",
      expected: b.source });
    if (name) await runJob("restore " + b.name, "POST", "/api/admin/backup/restore?wait=false&backup_name=" + q(b.name));
    return;
  }
  const target = await confirmTyped({
    title: "Restore bucket " + b.source + " from " + b.name,
    text: "Objects of " + b.source + " as this " + (b.kind === "snapshot" ? "snapshot" : "archive") +
          " holds them are written into the bucket below; existing keys are skipped, nothing is " +
          "deleted. Type the target bucket's name to confirm.",
    target: b.source });
  if (!target) return;
  const path = b.kind === "snapshot"
    ? "/api/admin/minio/snapshots/restore?wait=false&snapshot_name=" + q(b.name) + "&target_bucket=" + q(target)
    : "/api/admin/minio/backup/restore?wait=false&backup_name=" + q(b.name) + "&target_bucket=" + q(target);
  await runJob("restore " + b.name + " → " + target, "POST", path);
}

async function remove(b) {
  const name = await confirmTyped({
    title: "Delete " + b.name,
    text: "This " + b.kind + " backup of " + b.source + " is deleted from every tier (" +
          b.locations.join(", ") + "). It cannot be undone.",
    expected: b.name });
  if (!name) return;
  const result = await api("DELETE", DELETE[b.kind](b));
  flash(result.ok ? "Deleted " + b.name + "." : "Delete failed: " + result.error, result.ok);
  await afterChange();
}

async function pin(b, pinned) {
  const result = await api("POST", "/api/admin/backup/pin?backup_name=" + q(b.name) + "&pinned=" + pinned);
  flash(result.ok ? b.name + (pinned ? " is pinned: retention keeps it." : " is no longer pinned.")
                  : "Pin failed: " + result.error, result.ok);
  await afterChange();
}

// The buttons of one backup row, by kind (base backups recover with the CLI: PITR).
export function actionsFor(b) {
  const box = el("span", null, "buttons");
  if (VERIFY[b.kind]) box.append(button("Verify", () => runJob("verify " + b.name, "POST", VERIFY[b.kind](b))));
  if (b.kind !== "snapshot") {
    const pinned = b.tags.includes("pinned");
    box.append(button(pinned ? "Unpin" : "Pin", () => pin(b, !pinned)));
  }
  if (b.kind !== "basebackup") box.append(button("Restore…", () => restore(b), "danger"));
  if (DELETE[b.kind]) box.append(button("Delete…", () => remove(b), "danger"));
  if (b.kind === "basebackup") box.append(el("span", "recover: autograph backup base recover", "hint"));
  return box;
}

export async function acknowledge(alert, minutes) {
  const result = await api("POST", "/api/admin/alerts/ack?key=" + q(alert.key) +
                                   "&silence_minutes=" + minutes);
  flash(result.ok ? "Alert " + alert.key + (minutes ? " silenced for " + duration(minutes * 60) : " acknowledged") + "."
                  : "Acknowledge failed: " + result.error, result.ok);
  await afterChange();
}

export function wireActions(selectedBucket) {
  const add = (id, label, path) => {
    const node = document.getElementById(id);
    node.addEventListener("click", async () => {
      node.disabled = true;
      try { await runJob(label(), "POST", path()); } finally { node.disabled = false; }
    });
  };
  add("act-db-create", () => "back up database", () => "/api/admin/backup/create?wait=false");
  add("act-bucket-create", () => "archive " + selectedBucket(),
      () => "/api/admin/minio/backup/create?wait=false&bucket=" + q(selectedBucket()));
  add("act-snapshot-create", () => "snapshot " + selectedBucket(),
      () => "/api/admin/minio/snapshots/create?wait=false&bucket=" + q(selectedBucket()));
}
