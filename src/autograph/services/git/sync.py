"""Push a diagram's versions into its git repository, and import a commit back.

Diagrams are read and written through the diagram service's API with the caller's token;
git work runs in threads, one push or import per repository at a time in this process.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from autograph.config import Settings
from autograph.errors import NotFound
from autograph.services.common.security import Principal
from autograph.services.export.diagram_api import DiagramAPI
from autograph.services.git import repo as gitrepo

_locks: dict[Path, asyncio.Lock] = {}


def git_root(settings: Settings) -> Path:
    """The folder holding every repository (``HOME/data/git``)."""
    return settings.data_dir / "git"


def _lock(path: Path) -> asyncio.Lock:
    return _locks.setdefault(path, asyncio.Lock())


def _author(user: Principal) -> tuple[str, str]:
    return user.email.split("@", 1)[0] or "autograph-user", user.email


@dataclass(frozen=True)
class PushResult:
    """What a push did."""

    repository: Path
    head: str | None
    pushed: list[int]
    already: int


async def push(settings: Settings, user: Principal, token: str,
               diagram_id: UUID) -> PushResult:
    """Commit every version of the diagram not yet in its repository, oldest first.

    Raises NotFound for a missing or foreign diagram, Conflict when the branch moved under
    us, DependencyDown when the diagram service is unavailable.
    """
    assert user.user_id is not None
    api = DiagramAPI(settings, token)
    versions = await api.versions(diagram_id)  # 404 before anything touches the disk
    path = gitrepo.repository_path(git_root(settings), user.user_id, diagram_id)
    async with _lock(path):
        await asyncio.to_thread(gitrepo.ensure_repository, path)
        done = await asyncio.to_thread(gitrepo.pushed_versions, path)
        pushed: list[int] = []
        for meta in sorted(versions, key=lambda v: int(v["version"])):
            number = int(meta["version"])
            if number in done:
                continue
            full = await api.version(diagram_id, number)
            item = gitrepo.VersionToCommit(
                version=number, name=str(full["name"]), canvas=full.get("canvas") or {},
                sha256=str(full.get("sha256", "")), created_at=str(full["created_at"]))
            await asyncio.to_thread(gitrepo.commit_version, path, diagram_id, item,
                                    _author(user))
            pushed.append(number)
        head = await asyncio.to_thread(gitrepo.head, path)
    return PushResult(repository=path, head=head, pushed=pushed, already=len(done))


async def history(settings: Settings, user: Principal, diagram_id: UUID,
                  limit: int) -> list[gitrepo.Commit]:
    """The repository's newest commits; NotFound when the diagram was never pushed."""
    assert user.user_id is not None
    path = gitrepo.repository_path(git_root(settings), user.user_id, diagram_id)
    if not (path / "HEAD").exists():
        raise NotFound("no git repository for this diagram (push it first)")
    return await asyncio.to_thread(gitrepo.log, path, limit)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: the diagram written, from which commit, and whether its canvas
    matched the sha256 recorded at push time."""

    diagram: dict[str, Any]
    commit: gitrepo.Commit
    created: bool
    verified: bool


def canvas_digest(canvas: dict[str, Any]) -> str:
    """The sha256 the diagram service records for a canvas (compact UTF-8 JSON)."""
    data = json.dumps(canvas, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(data.encode()).hexdigest()


async def import_commit(settings: Settings, user: Principal, token: str, diagram_id: UUID,
                        revision: str | None, as_new: bool) -> ImportResult:
    """Write a commit's canvas back: as a new version of the diagram, or as a new diagram
    when ``as_new`` or when the diagram no longer exists (e.g. lost in a disaster).

    Raises NotFound (no repository, unknown commit), InvalidInput (bad commit id),
    DependencyDown (diagram service unavailable).
    """
    assert user.user_id is not None
    path = gitrepo.repository_path(git_root(settings), user.user_id, diagram_id)
    if not (path / "HEAD").exists():
        raise NotFound("no git repository for this diagram (push it first)")
    async with _lock(path):
        commit, canvas = await asyncio.to_thread(gitrepo.read_canvas, path, revision)
    api = DiagramAPI(settings, token)
    name = commit.subject.rsplit(" (version ", 1)[0][:200] or "Imported diagram"
    created = as_new
    if not as_new:
        try:
            diagram = await api.update(diagram_id, canvas)
        except NotFound:
            created = True
    if created:
        diagram = await api.create(name, canvas)
    return ImportResult(diagram=diagram, commit=commit, created=created,
                        verified=bool(commit.sha256) and canvas_digest(canvas) == commit.sha256)
