// The diagram pages: list (with an empty state), create, generate, and the editor: rename,
// canvas as validated JSON, preview, versions (view / restore), export downloads.
"use strict";

import { api, busy, button, bytes, cells, el, flash, when } from "./api.js";

const editor = { id: null, diagram: null };

export async function loadDiagrams() {
  const result = await api("GET", "/api/diagrams");
  const body = document.querySelector("#diagram-table tbody");
  body.replaceChildren();
  if (!result.ok) { if (result.status !== 401) flash("Diagrams unavailable: " + result.error); return; }
  const diagrams = result.data.diagrams || [];
  document.getElementById("diagram-empty").hidden = diagrams.length > 0;
  document.getElementById("diagram-table").hidden = diagrams.length === 0;
  for (const diagram of diagrams) {
    const open = el("a", "Open");
    open.href = "#/diagram/" + encodeURIComponent(diagram.id);
    body.append(cells(el("tr"), [diagram.name, diagram.current_version,
                                  when(diagram.updated_at), open]));
  }
}

// Problems with a canvas before it is sent: the server takes any JSON object, the renderer
// wants nodes and edges as lists, edges naming existing nodes.
export function canvasProblem(text) {
  let canvas;
  try { canvas = JSON.parse(text); } catch (err) { return ["Not valid JSON: " + err.message, null]; }
  if (canvas === null || typeof canvas !== "object" || Array.isArray(canvas)) {
    return ["The canvas must be a JSON object.", null];
  }
  const nodes = canvas.nodes === undefined ? [] : canvas.nodes;
  const edges = canvas.edges === undefined ? [] : canvas.edges;
  if (!Array.isArray(nodes)) return ["\"nodes\" must be a list.", null];
  if (!Array.isArray(edges)) return ["\"edges\" must be a list.", null];
  const ids = new Set();
  for (const [i, node] of nodes.entries()) {
    if (!node || typeof node !== "object" || node.id === undefined) return ["Node " + (i + 1) + " needs an \"id\".", null];
    if (ids.has(String(node.id))) return ["Two nodes have the id " + JSON.stringify(node.id) + ".", null];
    ids.add(String(node.id));
  }
  for (const [i, edge] of edges.entries()) {
    if (!edge || !ids.has(String(edge.source)) || !ids.has(String(edge.target))) {
      return ["Edge " + (i + 1) + " must join two existing node ids (source, target).", null];
    }
  }
  return ["", canvas];
}

export async function openEditor(id) {
  editor.id = id;
  const result = await api("GET", "/api/diagrams/" + encodeURIComponent(id));
  if (!result.ok) { if (result.status !== 401) flash("Cannot open the diagram: " + result.error); return; }
  showDiagram(result.data);
  await Promise.all([renderPreview(result.data), loadVersions()]);
}

function showDiagram(diagram) {
  editor.diagram = diagram;
  document.getElementById("editor-title").textContent =
    diagram.name + " (version " + diagram.current_version + ")";
  document.querySelector("#rename-form input[name=name]").value = diagram.name;
  document.getElementById("canvas-json").value = JSON.stringify(diagram.canvas || {}, null, 2);
  document.getElementById("canvas-problem").hidden = true;
  document.getElementById("version-shown").hidden = true;
}

async function renderPreview(diagram) {
  const svg = await api("POST", "/api/render/svg",
    { body: { canvas: diagram.canvas || {}, title: diagram.name }, blob: true });
  const img = document.getElementById("preview-img");
  if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
  if (!svg.ok) { img.removeAttribute("src"); flash("Cannot draw the preview: " + svg.error); return; }
  img.src = URL.createObjectURL(svg.blob);
}

async function loadVersions() {
  const result = await api("GET", "/api/diagrams/" + encodeURIComponent(editor.id) + "/versions");
  const body = document.querySelector("#version-table tbody");
  body.replaceChildren();
  if (!result.ok) { if (result.status !== 401) flash("Versions unavailable: " + result.error); return; }
  for (const version of [...result.data.versions].reverse()) {
    const actions = el("span", null, "buttons");
    actions.append(button("View", () => viewVersion(version.version)));
    if (version.version !== editor.diagram.current_version) {
      actions.append(button("Restore", () => restoreVersion(version.version)));
    } else {
      actions.append(el("span", "current", "hint"));
    }
    body.append(cells(el("tr"), [version.version, version.name, bytes(version.size_bytes),
                                  when(version.created_at), actions]));
  }
}

async function fetchVersion(number) {
  const result = await api("GET", "/api/diagrams/" + encodeURIComponent(editor.id) +
                                  "/versions/" + number);
  if (!result.ok) { flash("Cannot read version " + number + ": " + result.error); return null; }
  return result.data;
}

async function viewVersion(number) {
  const version = await fetchVersion(number);
  if (!version) return;
  document.getElementById("canvas-json").value = JSON.stringify(version.canvas || {}, null, 2);
  const note = document.getElementById("version-shown");
  note.textContent = "The editor shows version " + number + " (" + version.name +
    "). Save to make it the current version, or reopen the diagram to discard.";
  note.hidden = false;
  await renderPreview(version);
}

async function restoreVersion(number) {
  const version = await fetchVersion(number);
  if (!version) return;
  await save({ canvas: version.canvas || {}, name: version.name },
             "Version " + number + " restored as a new version.");
}

async function save(body, message) {
  const result = await api("PUT", "/api/diagrams/" + encodeURIComponent(editor.id), { body });
  if (!result.ok) { if (result.status !== 401) flash("Save failed: " + result.error); return; }
  flash(message + " Now at version " + result.data.current_version + ".", true);
  showDiagram(result.data);
  await Promise.all([renderPreview(result.data), loadVersions()]);
}

async function onSaveCanvas() {
  const [problem, canvas] = canvasProblem(document.getElementById("canvas-json").value);
  const box = document.getElementById("canvas-problem");
  box.textContent = problem;
  box.hidden = !problem;
  if (problem) return;
  await save({ canvas }, "Canvas saved.");
}

async function onRename(event) {
  event.preventDefault();
  const name = new FormData(event.target).get("name");
  await busy(event.submitter || event.target.querySelector("button"),
             () => save({ name }, "Renamed."));
}

async function onExport(format) {
  const made = await api("POST", "/api/exports", { body: { diagram_id: editor.id, format } });
  if (!made.ok) { if (made.status !== 401) flash("Export failed: " + made.error); return; }
  const file = await api("GET", made.data.download_url, { blob: true });
  if (!file.ok) { flash("Download failed: " + file.error); return; }
  const link = el("a");
  link.href = URL.createObjectURL(file.blob);
  link.download = (made.data.diagram_name || "diagram") + "-v" + made.data.version + "." + format;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  flash("Exported " + format.toUpperCase() + " (" + bytes(made.data.size_bytes) + ").", true);
}

async function onCreate(event) {
  event.preventDefault();
  const form = event.target;
  const name = new FormData(form).get("name");
  await busy(form.querySelector("button"), async () => {
    const result = await api("POST", "/api/diagrams", { body: { name } });
    if (!result.ok) { if (result.status !== 401) flash("Create failed: " + result.error); return; }
    form.reset();
    flash("Diagram created.", true);
    location.hash = "#/diagram/" + encodeURIComponent(result.data.id);
  });
}

async function onGenerate(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const body = { prompt: data.get("prompt"), save: true };
  if (data.get("name")) body.name = data.get("name");
  await busy(form.querySelector("button"), async () => {
    const result = await api("POST", "/api/ai/generate", { body });
    if (!result.ok) { if (result.status !== 401) flash("Generation failed: " + result.error); return; }
    form.reset();
    flash("Generated " + result.data.node_count + " nodes.", true);
    location.hash = "#/diagram/" + encodeURIComponent(result.data.diagram.id);
  });
}

export function wireDiagrams() {
  document.getElementById("create-form").addEventListener("submit", onCreate);
  document.getElementById("generate-form").addEventListener("submit", onGenerate);
  document.getElementById("rename-form").addEventListener("submit", onRename);
  const saveButton = document.getElementById("canvas-save");
  saveButton.addEventListener("click", () => busy(saveButton, onSaveCanvas));
  for (const node of document.querySelectorAll("button.export")) {
    node.addEventListener("click", () => busy(node, () => onExport(node.dataset.format)));
  }
}
