"""What the admin routers share: ``wait=true|false`` handling, name checks, manager lookup.

Used by :mod:`autograph.dr.api.backups` (database backups, jobs) and ``autograph.dr.api.buckets``
(bucket backups). Long work either runs in the request (``wait=true``: the answer is the result)
or as a background job (``wait=false``: 202 ``{"job_id"}``, polled at ``/api/admin/jobs/{id}``).
A lock taken before answering 202 makes a conflicting request fail with 409 at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse

from autograph.dr.models import ProgressFn, jsonable, no_progress, validate_name
from autograph.dr.ops import jobs, locks
from autograph.errors import InvalidInput


def required_name(value: str | None, parameter: str = "backup_name") -> str:
    """A validated backup name from a query/path parameter. Raises InvalidInput (400)."""
    if value is None or value == "":
        raise InvalidInput(f"{parameter} is required")
    return validate_name(value)


def run_or_submit(
    job_kind: str,
    work: Callable[[ProgressFn, locks.OperationLock | None], Any],
    *,
    wait: bool,
    acquire: Callable[[], locks.OperationLock],
    status_code: int = 200,
) -> JSONResponse:
    """Run ``work(progress, lock)`` now (``wait``) or as a job after taking the lock.

    With ``wait`` the work takes its own lock (Conflict → 409). Without, ``acquire`` runs
    first (Conflict → 409 before answering) and the job releases the lock when done.
    """
    if wait:
        result = work(no_progress, None)
        return JSONResponse(jsonable(result), status_code=status_code)
    lock = acquire()
    try:
        job = jobs.registry.submit(job_kind, lambda progress: work(progress, lock),
                                   cleanup=lock.release)
    except BaseException:
        lock.release()
        raise
    return JSONResponse({"job_id": job.id, "status": job.status,
                         "status_url": f"/api/admin/jobs/{job.id}"}, status_code=202)


T = TypeVar("T")


def cached(request: Request, key: str, build: Callable[[], T]) -> T:
    """An object built once per app (managers hold S3 clients worth reusing)."""
    store: dict[str, Any] | None = getattr(request.app.state, "dr_cache", None)
    if store is None:
        store = {}
        request.app.state.dr_cache = store
    if key not in store:
        store[key] = build()
    built: T = store[key]
    return built
