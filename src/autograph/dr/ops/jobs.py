"""In-process registry of background jobs, for the admin API's ``wait=false`` (SPEC §4).

``submit`` runs a function in a daemon thread and returns its :class:`Job` at once; the function
receives a progress callback. ``GET /api/admin/jobs/{id}`` reads :meth:`JobRegistry.get`.
Jobs live in memory (the newest ``keep`` finished ones are kept): a restarted gateway forgets
them, while the backups they produced are in the catalog. With a :class:`JobStore` (gateways on
several hosts, :mod:`jobstore`) every change is also written there (progress at most once a
second) and a job unknown to this process is looked up in it, so any gateway answers for it.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field, JsonValue

from autograph.clock import Clock, utc_now
from autograph.dr.models import ProgressFn
from autograph.errors import AutographError, InvalidInput, NotFound

log = logging.getLogger("autograph.dr.jobs")
JobStatus = Literal["running", "succeeded", "failed"]
_ID = re.compile(r"[0-9a-f]{32}")


class Job(BaseModel):
    """A background job as the API shows it."""

    id: str
    kind: str = Field(description="e.g. 'backup.create', 'backup.restore'")
    status: JobStatus = "running"
    progress: float | None = Field(default=None, description="0..1 when known")
    step: str = ""
    result: JsonValue | None = None
    error: str | None = None
    error_status: int | None = Field(default=None, description="the HTTP status of the error")
    started_at: datetime
    finished_at: datetime | None = None


Work = Callable[[ProgressFn], Any]


class JobStore(Protocol):
    """Where jobs are shared between gateway processes."""

    def put(self, job: Job) -> None: ...

    def fetch(self, job_id: str) -> Job | None: ...


class JobRegistry:
    """Thread-safe job table; finished jobs beyond ``keep`` are forgotten, oldest first."""

    def __init__(self, keep: int = 200, clock: Clock = utc_now) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep
        self._clock = clock
        self._store: JobStore | None = None
        self._written: dict[str, float] = {}
        self._listeners: list[Callable[[Job], None]] = []

    def use_store(self, store: JobStore | None) -> None:
        """Share jobs through ``store`` (None: this process only)."""
        self._store = store

    def add_listener(self, listener: Callable[[Job], None]) -> None:
        """Call ``listener(job)`` when a job ends (e.g. the audit log); its errors are ignored."""
        self._listeners.append(listener)

    def submit(self, kind: str, work: Work, cleanup: Callable[[], None] | None = None) -> Job:
        """Start ``work(progress)`` in a thread; return the running job.

        ``cleanup`` runs after the work whatever happens (e.g. releasing a lock taken by the
        caller before answering). The work's return value (a pydantic model or plain data)
        becomes ``result``; an AutographError's message and status become ``error``.
        """
        job = Job(id=secrets.token_hex(16), kind=kind, started_at=self._clock())
        with self._lock:
            self._jobs[job.id] = job
            self._trim()
        self._share(job, force=True)
        thread = threading.Thread(target=self._run, args=(job.id, work, cleanup),
                                  name=f"job-{kind}-{job.id[:8]}", daemon=True)
        thread.start()
        return job.model_copy()

    def _run(self, job_id: str, work: Work, cleanup: Callable[[], None] | None) -> None:
        def progress(step: str, fraction: float | None) -> None:
            self._update(job_id, step=step, progress=fraction)

        try:
            value = work(progress)
            result = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
            self._update(job_id, status="succeeded", result=result, progress=1.0,
                         finished_at=self._clock())
        except AutographError as exc:
            self._update(job_id, status="failed", error=exc.message,
                         error_status=exc.http_status, finished_at=self._clock())
        except Exception as exc:
            self._update(job_id, status="failed", error=f"internal error: {type(exc).__name__}",
                         error_status=500, finished_at=self._clock())
        finally:
            if cleanup is not None:
                cleanup()
            self._notify(job_id)

    def _notify(self, job_id: str) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
        for listener in list(self._listeners) if job is not None else []:
            try:
                listener(job)  # type: ignore[arg-type]
            except Exception:  # a listener must never break a job
                continue

    def _update(self, job_id: str, **changes: Any) -> None:
        with self._lock:
            job = self._jobs.get(job_id)
            if job is not None:
                job = self._jobs[job_id] = job.model_copy(update=changes)
        if job is not None:
            self._share(job, force="status" in changes)

    def _share(self, job: Job, *, force: bool) -> None:
        """Write the job to the store: every status change, progress at most once a second."""
        if self._store is None:
            return
        now = time.monotonic()
        if not force and now - self._written.get(job.id, 0.0) < 1.0:
            return
        self._written[job.id] = now
        if job.status != "running":
            self._written.pop(job.id, None)
        try:
            self._store.put(job)
        except Exception as exc:  # the job itself goes on; other gateways see it later
            log.warning("job %s not shared: %s", job.id, exc)

    def _trim(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.status != "running"]
        for key in finished[: max(0, len(finished) - self._keep)]:
            del self._jobs[key]

    def get(self, job_id: str) -> Job:
        """The job ``job_id``. Raises InvalidInput for a malformed id, NotFound if unknown."""
        if not _ID.fullmatch(job_id or ""):
            raise InvalidInput("invalid job id: expected 32 hexadecimal characters")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None and self._store is not None:
            job = self._store.fetch(job_id)
        if job is None:
            raise NotFound(f"no job {job_id} (jobs are kept in memory by the gateway process)")
        return job

    def list(self) -> list[Job]:
        """Every known job, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))


registry = JobRegistry()
"""The process-wide registry the admin API uses."""
