// Shared by every page: the API wrapper with honest error messages, DOM helpers, formatters.
// Every value from the server is written with textContent (never innerHTML).
"use strict";

// The user's session token lives in this variable only (never in web storage): a reload
// asks to log in again. Operators hold no token at all: their session is an HttpOnly cookie.
export const state = { token: null, operator: false, onUnauthorized: null };

export function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

export function button(label, onClick, cls) {
  const node = el("button", label, cls);
  node.type = "button";
  node.addEventListener("click", () => busy(node, onClick));
  return node;
}

// Run fn with the control disabled, so a double click cannot send the request twice.
export async function busy(control, fn) {
  if (control.disabled) return undefined;
  control.disabled = true;
  try { return await fn(); } finally { control.disabled = false; }
}

export function flash(message, ok) {
  const box = document.getElementById("flash");
  box.textContent = message || "";
  box.className = ok ? "ok" : "error";
  box.hidden = !message;
}

function describeFailure(status, data, bodyText) {
  const d = data && data.detail;
  let text = "";
  if (typeof d === "string") text = d;
  else if (Array.isArray(d)) text = d.map((x) => (x && x.msg) || JSON.stringify(x)).join("; ");
  else if (d) text = JSON.stringify(d);
  if (status >= 500) {
    return "Server error (HTTP " + status + ")" + (text ? ": " + text :
      bodyText ? ": the server sent a non-JSON answer" : "");
  }
  return text || ("HTTP " + status + (bodyText ? " (non-JSON answer)" : ""));
}

// One API call. Never throws: { ok, status, data, blob, error } where error is a sentence
// for the user (network down, 401, 5xx, a body that is not the JSON it claims to be).
export async function api(method, path, options = {}) {
  const headers = { "Accept": "application/json", "X-Requested-With": "autograph" };
  if (options.auth) headers["Authorization"] = "Bearer " + options.auth;
  else if (state.token && !path.startsWith("/api/admin/")) {
    headers["Authorization"] = "Bearer " + state.token;
  }
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method, headers, credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body) });
  } catch (_err) {
    return { ok: false, status: 0, data: null,
             error: "Network error: the server could not be reached. Check the connection and try again." };
  }
  const result = { ok: response.ok, status: response.status, data: null, blob: null, error: "" };
  const type = response.headers.get("content-type") || "";
  let bodyText = "";
  if (response.status !== 204) {
    if (options.blob && response.ok) {
      result.blob = await response.blob();
    } else {
      bodyText = await response.text().catch(() => "");
      if (type.includes("application/json") && bodyText) {
        try { result.data = JSON.parse(bodyText); } catch (_err) {
          result.ok = false;
          result.error = "The server sent an unreadable answer (HTTP " + response.status + ").";
          return result;
        }
      } else if (response.ok && bodyText && !options.text) {
        result.ok = false;
        result.error = "The server sent an unexpected answer (HTTP " + response.status + ", not JSON).";
        return result;
      }
      if (options.text) result.text = bodyText;
    }
  }
  if (!response.ok) {
    result.error = describeFailure(response.status, result.data, bodyText);
    if (response.status === 401 && state.onUnauthorized && !options.quiet401) {
      state.onUnauthorized(path.startsWith("/api/admin/"));
    }
  }
  return result;
}

export function bytes(n) {
  if (typeof n !== "number") return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

// "45 s", "4 min", "3 h 5 min", "2 d 4 h": short, readable, no false precision.
export function duration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) {
    const m = Math.floor((s % 3600) / 60);
    return Math.floor(s / 3600) + " h" + (m ? " " + m + " min" : "");
  }
  const h = Math.floor((s % 86400) / 3600);
  return Math.floor(s / 86400) + " d" + (h ? " " + h + " h" : "");
}

export function ago(iso) {
  if (!iso) return "never";
  const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
  return seconds < 0 ? "in " + duration(-seconds) : duration(seconds) + " ago";
}

export function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleString();
}

export function cells(row, values) {
  for (const value of values) {
    row.append(value instanceof Node ? wrap("td", value) : el("td", value));
  }
  return row;
}

function wrap(tag, child) {
  const node = el(tag);
  node.append(child);
  return node;
}
