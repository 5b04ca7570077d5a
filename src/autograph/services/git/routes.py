"""Routes of the git service: ``/api/git`` push, log and import."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from autograph.services.common.deps import CurrentUser, SettingsDep, TokenDep
from autograph.services.git import sync
from autograph.services.git.repo import Commit

router = APIRouter(prefix="/api/git", tags=["git"])


class PushRequest(BaseModel):
    """The diagram whose versions to push."""

    model_config = ConfigDict(extra="forbid")

    diagram_id: UUID


class PushPublic(BaseModel):
    """The repository (relative to ``HOME/data/git``), its head, and the versions pushed now."""

    diagram_id: UUID
    repository: str
    head: str | None
    pushed_versions: list[int]
    already_pushed: int


class CommitPublic(BaseModel):
    """One commit: the diagram version it holds and that version's canvas sha256."""

    commit: str
    version: int | None
    sha256: str
    message: str
    author: str
    date: str


class LogPublic(BaseModel):
    """The newest commits first."""

    diagram_id: UUID
    commits: list[CommitPublic]
    count: int


class ImportRequest(BaseModel):
    """Which commit (default: the newest) to bring back, and whether as a new diagram."""

    model_config = ConfigDict(extra="forbid")

    diagram_id: UUID
    commit: str | None = Field(default=None, min_length=4, max_length=64)
    as_new: bool = False


class ImportPublic(BaseModel):
    """The diagram written; ``verified`` when the canvas matched its recorded sha256."""

    diagram: dict[str, Any]
    commit: CommitPublic
    created: bool
    verified: bool


def _commit(c: Commit) -> CommitPublic:
    return CommitPublic(commit=c.commit, version=c.version, sha256=c.sha256, message=c.subject,
                        author=f"{c.author_name} <{c.author_email}>", date=c.date)


@router.post("/push")
async def push(body: PushRequest, user: CurrentUser, token: TokenDep,
               settings: SettingsDep) -> PushPublic:
    """Commit every version of one of your diagrams not yet in its repository."""
    result = await sync.push(settings, user, token, body.diagram_id)
    return PushPublic(
        diagram_id=body.diagram_id, head=result.head, pushed_versions=result.pushed,
        already_pushed=result.already,
        repository=str(result.repository.relative_to(sync.git_root(settings))))


@router.get("/log")
async def log(user: CurrentUser, settings: SettingsDep, diagram_id: Annotated[UUID, Query()],
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> LogPublic:
    """The history of a diagram's repository, newest first; 404 if never pushed."""
    commits = await sync.history(settings, user, diagram_id, limit)
    return LogPublic(diagram_id=diagram_id, commits=[_commit(c) for c in commits],
                     count=len(commits))


@router.post("/import")
async def import_commit(body: ImportRequest, user: CurrentUser, token: TokenDep,
                        settings: SettingsDep) -> ImportPublic:
    """Bring a commit's canvas back as a new version (or a new diagram if the original is
    gone, or when ``as_new``)."""
    result = await sync.import_commit(settings, user, token, body.diagram_id, body.commit,
                                      body.as_new)
    return ImportPublic(diagram=result.diagram, commit=_commit(result.commit),
                        created=result.created, verified=result.verified)
