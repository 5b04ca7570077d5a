"""Run a sandbox drill from the DR console: ``POST /api/admin/drills/run`` starts one as a
background job (always: a drill takes many minutes), ``GET`` says what runs, ``DELETE`` asks
it to stop (its sandbox is removed). One at a time: 409 while a drill or restore test runs.

Mounted under ``/api/admin`` (admin token or session); the changes are audited like every
admin action (:class:`autograph.dr.api.audit.AuditMiddleware`).
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from autograph.dr.api.support import run_or_submit
from autograph.dr.models import ProgressFn
from autograph.dr.ops import locks
from autograph.dr.proof import manual
from autograph.services.common.deps import AdminDep, ResourcesDep

router = APIRouter(tags=["admin: console"])
JOB_KIND = "drill.sandbox"


@router.get("/drills/run", response_model=manual.DrillRunning)
def drill_running(resources: ResourcesDep) -> manual.DrillRunning:
    """Whether a drill (or the scheduled restore tests) runs now, since when, started by whom."""
    return manual.current(resources.settings)


@router.post("/drills/run", status_code=202,
             responses={202: {"description": "started: ``{job_id, status, status_url}``"},
                        409: {"description": "a drill or restore test is already running"}})
def run_drill(principal: AdminDep, resources: ResourcesDep) -> JSONResponse:
    """Start a sandbox drill (scenario complete, niced) as a job; poll it at ``status_url``."""
    settings = resources.settings

    def work(progress: ProgressFn, lock: locks.OperationLock | None) -> object:
        assert lock is not None  # taken by `acquire` before the job starts
        return manual.run(settings, lock, progress)

    return run_or_submit(JOB_KIND, work, wait=False,
                         acquire=lambda: manual.take(settings, principal.email))


@router.delete("/drills/run", response_model=manual.DrillRunning,
               responses={404: {"description": "no drill is running"},
                          409: {"description": "what runs is not a drill started by hand"}})
def stop_drill(resources: ResourcesDep) -> manual.DrillRunning:
    """Ask the running drill to stop; its job ends as failed once the sandbox is removed."""
    return manual.request_stop(resources.settings)
