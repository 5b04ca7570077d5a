"""The drill's integrity verdict: the restored state compared with what it must equal (the
state at the backup restored for what the scenario destroyed, the state before the failure for
what it left alone), the rows naming missing objects, and the corruption criterion."""

from __future__ import annotations

from typing import Any

from autograph.dr.drill.evidence import RESTORES_DATABASE, RESTORES_OBJECTS, Evidence
from autograph.dr.recovery.integrity import (
    OBJECT_REFERENCES,
    TableFingerprint,
    compare_objects,
    compare_tables,
)


def integrity_report(ev: Evidence, restored: dict[str, Any]) -> dict[str, Any]:
    """Restored state vs what it must equal: the state at the backup restored for what the
    scenario destroyed, the state before the failure for what it left alone."""
    result: dict[str, Any] = {"fingerprint_pause_seconds": round(ev.pause_seconds, 3)}
    if ev.before is not None:
        result["before_failure"] = ev.before.summary()
    if ev.after is None or ev.before is None:
        result["database"] = result["objects"] = {"checked": False,
                                                  "why": "the restored state was not captured"}
    else:
        result["after_recovery"] = ev.after.summary()
        expected_tables: dict[str, TableFingerprint] | None
        lenient = list(ev.volatile.get("tables", []))
        if ev.scenario == "machine" and restored["method"] == "physical":
            # The off-site WAL ends at the last segment shipped: tables written after the
            # base backup come back somewhere between it and the failure (the writer's log
            # measures how far: the RPO); every other table must be exactly as before.
            shot = ev.at_backup.get(restored["database"] or "")
            expected_tables = ev.before.tables
            later = sorted(t for t in ev.before.tables
                           if shot is None or shot.tables.get(t) != ev.before.tables[t])
            lenient += later
            basis = (f"state before the failure (base backup {restored['database']} + the "
                     f"WAL shipped off-site); written after the backup, judged by the RPO: "
                     f"{', '.join(later) or 'none'}")
        elif ev.scenario in RESTORES_DATABASE and restored["method"] == "physical":
            expected_tables = ev.before.tables
            basis = (f"state before the failure (base backup {restored['database']} + "
                     "streamed WAL replayed to the end)")
        elif ev.scenario in RESTORES_DATABASE:
            shot = ev.at_backup.get(restored["database"] or "")
            expected_tables = shot.tables if shot else None
            basis = f"state at backup {restored['database']}"
        else:
            expected_tables, basis = ev.before.tables, "state before the failure"
        result["database"] = ({"checked": False, "why": f"no fingerprint of {basis}"}
                              if expected_tables is None else _leniently(
                                  {"checked": True, "basis": basis,
                                   **compare_tables(expected_tables, ev.after.tables)},
                                  lenient))
        expected_objects: dict[str, dict[str, tuple[str, int]]] = {}
        bases = {}
        for bucket in ev.before.objects:
            name = restored["buckets"].get(bucket)
            shot = ev.at_backup.get(name or "") if ev.scenario in RESTORES_OBJECTS else None
            if ev.scenario in RESTORES_OBJECTS and shot is None:
                continue
            source = shot or ev.before
            expected_objects[bucket] = source.objects.get(bucket, {})
            bases[bucket] = f"state at backup {name}" if shot else "state before the failure"
        actual = {b: ev.after.objects.get(b, {}) for b in expected_objects}
        result["objects"] = ({"checked": False, "why": "no fingerprint of the backups restored"}
                             if not expected_objects else _leniently(
                                 {"checked": True, "basis": bases,
                                  **compare_objects(expected_objects, actual)},
                                 ev.volatile.get("buckets", [])))
    result["references"] = _new_dangling(ev.dangling, ev.dangling_before, ev.restored_keys)
    result["dataset"] = ev.dataset_check or {"checked": False}
    return result


def _new_dangling(after: dict[str, Any] | None, before: dict[str, Any] | None,
                  restored_keys: dict[str, set[str]] | None = None) -> dict[str, Any]:
    """References the failure and recovery left dangling, beyond those already dangling
    before the failure (an earlier loss is reported, not charged to this recovery).

    A row naming an object the restored backups never held (written after the snapshot and
    not brought back from the outbox) is listed as ``lost_after_backup`` and is corruption
    too: the database and the buckets were restored to different moments (issue 12)."""
    if after is None:
        return {"checked": False}
    if not any(isinstance(v, dict) and v.get("checked") for v in after.values()):
        return {**_without_keys(after), "ok": None}
    tables = {table: bucket for table, _column, bucket in OBJECT_REFERENCES}
    new: dict[str, int] = {}
    lost: dict[str, int] = {}
    earlier: dict[str, int] = {}
    for table, found in after.items():
        if not (isinstance(found, dict) and found.get("dangling")):
            continue
        was = (before or {}).get(table) or {}
        now_keys, was_keys = set(found.get("keys", [])), set(was.get("keys", []))
        if was.get("dangling"):
            earlier[table] = int(was["dangling"])
        if not now_keys:  # keys not kept: counts only
            extra = int(found["dangling"]) - earlier.get(table, 0)
            if extra > 0:
                new[table] = extra
            continue
        fresh = now_keys - was_keys
        held = restored_keys.get(tables.get(table, "")) if restored_keys else None
        beyond = {k for k in fresh if held is not None and k not in held}
        if beyond:
            lost[table] = len(beyond)
        if len(fresh) - len(beyond) > 0:
            new[table] = len(fresh) - len(beyond)
    return {**_without_keys(after), "new_dangling": new, "lost_after_backup": lost,
            "dangling_before_failure": earlier, "ok": not new and not lost}


def _excused_by_recovery(ev: Evidence) -> str | None:
    """The recovery's own finding when it judged the dangling rows not corruption (a --to
    past the protected point, or objects destroyed before they were protected), else None."""
    if ev.recovery is None:
        return None
    for step in ev.recovery.steps:
        found = step.data.get("checks", {}).get("references", {}) if step.name == "verify" \
            else {}
        if found.get("corruption") is False:
            return str(found.get("detail", ""))
    return None


def _listed(refs: dict[str, Any]) -> str:
    """The dangling rows' keys (samples), for the report."""
    samples = {t: v.get("sample") for t, v in refs.items()
               if isinstance(v, dict) and v.get("dangling")}
    return f" ({samples})" if samples else ""


def _without_keys(found: dict[str, Any]) -> dict[str, Any]:
    """The dangling-reference result without its full key lists (samples stay)."""
    return {k: ({f: x for f, x in v.items() if f != "keys"} if isinstance(v, dict) else v)
            for k, v in found.items()}


def _leniently(comparison: dict[str, Any], volatile: list[str]) -> dict[str, Any]:
    """Mismatches in what changed while the backup ran are listed apart, not held against
    the restore (the exact state the backup caught is unknown for them)."""
    excused = [name for name in comparison["mismatched"] if name in volatile]
    if excused:
        comparison["mismatched"] = [n for n in comparison["mismatched"] if n not in excused]
        comparison["changed_during_backup"] = excused
        comparison["ok"] = not comparison["mismatched"]
    return comparison


def corruption_verdict(ev: Evidence, integrity: dict[str, Any]) -> tuple[bool | None, str]:
    """The "no data corruption" criterion from the integrity report: ok, failed or not
    known (None), with the evidence in words."""
    parts: list[str] = []
    verdicts: list[bool] = []
    for kind in ("database", "objects"):
        found = integrity[kind]
        if not found.get("checked"):
            parts.append(f"{kind}: not checked ({found.get('why')})")
            continue
        verdicts.append(bool(found["ok"]))
        parts.append(f"{kind} {'identical to' if found['ok'] else 'DIFFERS from'} "
                     f"{found['basis'] if kind == 'database' else 'expected'}"
                     + ("" if found["ok"] else f" ({', '.join(found['mismatched'])})"))
        if found.get("changed_during_backup"):
            parts.append(f"not compared ({kind}, changed while a backup ran or the writer "
                         "wrote; see the RPO and the references): "
                         f"{', '.join(found['changed_during_backup'])}")
    refs = integrity["references"]
    excused = _excused_by_recovery(ev)
    if refs.get("ok") is not None:
        verdicts.append(bool(refs["ok"]) or excused is not None)
        if not refs["ok"] and excused is not None:
            parts.append(f"not corruption, as the recovery said before or while it ran: "
                         f"{excused}")
        parts.append("no row names a missing object" if refs["ok"] else
                     f"rows naming missing objects: {refs['new_dangling']}"
                     + _listed(refs))
        if refs.get("lost_after_backup"):
            parts.append(f"rows naming objects the restored backups never held (database "
                         f"and buckets restored to different moments): "
                         f"{refs['lost_after_backup']}")
        if refs.get("dangling_before_failure"):
            parts.append(f"already missing before the failure: "
                         f"{refs['dangling_before_failure']}")
    data = integrity["dataset"]
    if "diagrams" in data:
        bad = sum(v["mismatched"] for k, v in data.items() if isinstance(v, dict))
        verdicts.append(bad == 0)
        parts.append(f"dataset read back with {bad} mismatches")
    changed = sum(x.changed for x in (ev.rpo_database, ev.rpo_objects) if x)
    if ev.rpo_database or ev.rpo_objects:
        verdicts.append(changed == 0)
        parts.append(f"{changed} surviving writes with altered content")
    if not verdicts:
        return None, "; ".join(parts) or "no integrity evidence"
    complete = len(verdicts) >= 4
    ok = all(verdicts)
    return (ok if (complete or not ok) else None), "; ".join(parts)
