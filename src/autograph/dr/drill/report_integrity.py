"""The Integrity section of ``report.html`` as tables: per table row counts and checksums, per
bucket key counts, the dangling references listed, anything else as flattened key/value rows.

The integrity evidence is a loosely shaped dict built by the drill (``drill_integrity``): known
parts get their own table, unknown ones are still shown (flattened), never dropped.
"""

from __future__ import annotations

import html
import json
from typing import Any

e = html.escape


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str)
    return str(value)


def _table(headers: list[str], rows: list[list[Any]], caption: str = "") -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{e(_text(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return f"<table>{cap}<tr>{head}</tr>{body}</table>"


def _flatten(data: Any, prefix: str = "") -> list[list[Any]]:
    if isinstance(data, dict) and data:
        rows: list[list[Any]] = []
        for key, value in data.items():
            rows += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return rows
    return [[prefix, data]]


def _status(part: dict[str, Any]) -> str:
    if part.get("checked") is False:
        return f"<p class='not_checked'>not checked: {e(_text(part.get('why')))}</p>"
    ok = part.get("ok")
    label = "identical" if ok else "DIFFERS" if ok is False else "not judged"
    basis = f" (compared with {e(_text(part['basis']))})" if part.get("basis") else ""
    return f"<p class='{'pass' if ok else 'fail'}'>{label}{basis}</p>"


def _database(part: dict[str, Any]) -> str:
    tables = part.get("tables") or {}
    rows = [[name, t.get("expected_rows"), t.get("rows"), t.get("checksum_match")]
            for name, t in tables.items() if isinstance(t, dict)]
    rest = {k: v for k, v in part.items() if k not in ("tables", "ok", "checked", "basis")}
    return (_status(part) + (_table(["table", "expected rows", "rows", "checksum matches"], rows)
                             if rows else "")
            + (_table(["detail", "value"], _flatten(rest)) if rest else ""))


def _objects(part: dict[str, Any]) -> str:
    buckets = part.get("buckets") or {}
    rows = [[name, b.get("expected"), b.get("found"), b.get("missing"), b.get("extra"),
             b.get("changed"), ", ".join(map(str, b.get("sample") or [])) or "—"]
            for name, b in buckets.items() if isinstance(b, dict)]
    rest = {k: v for k, v in part.items() if k not in ("buckets", "ok", "checked", "basis")}
    return (_status(part)
            + (_table(["bucket", "expected keys", "found", "missing", "extra",
                       "changed (etag)", "sample"], rows) if rows else "")
            + (_table(["detail", "value"], _flatten(rest)) if rest else ""))


def _references(part: dict[str, Any]) -> str:
    out = [_status(part)]
    scalars: dict[str, Any] = {}
    for key, value in part.items():
        if key in ("ok", "checked"):
            continue
        if isinstance(value, list):
            items = "".join(f"<li>{e(_text(v))}</li>" for v in value) or "<li>none</li>"
            out.append(f"<h4>{e(key.replace('_', ' '))}</h4><ul>{items}</ul>")
        else:
            scalars[key] = value
    if scalars:
        out.append(_table(["detail", "value"], _flatten(scalars)))
    return "".join(out)


RENDERERS = {"database": _database, "objects": _objects, "references": _references}


def render_integrity(integrity: dict[str, Any]) -> str:
    """HTML for the Integrity section (escaped; no script, no external resource)."""
    if not integrity:
        return "<p class='not_checked'>no integrity evidence recorded</p>"
    parts = []
    for key, value in integrity.items():
        render = RENDERERS.get(key)
        title = f"<h3>{e(key)}</h3>"
        if render is not None and isinstance(value, dict):
            parts.append(title + render(value))
        else:
            parts.append(title + _table(["item", "value"], _flatten(value, "")))
    return "".join(parts)
