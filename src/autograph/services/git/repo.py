"""Bare git repositories of diagrams, written with git's plumbing commands (no work tree).

One repository per diagram at ``HOME/data/git/users/<owner id>/<diagram id>.git``; branch
``main`` has one commit per diagram version holding ``diagram.json`` (the canvas, pretty
printed in its own key order, so compact re-encoding gives back the recorded sha256), with
trailers ``Autograph-Diagram``, ``Autograph-Version`` and ``Autograph-SHA256``.
Every git call goes through ``autograph.commands.run`` with an argument list; user text
(names, canvases) only ever travels on stdin.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from autograph.commands import run
from autograph.errors import Conflict, InvalidInput, NotFound, OperationFailed

BRANCH = "refs/heads/main"
FILENAME = "diagram.json"
COMMITTER = ("AutoGraph git service", "git-service@autograph.local")
_REVISION = re.compile(r"^[0-9a-f]{4,64}$")
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass(frozen=True)
class Commit:
    """One commit of a diagram repository."""

    commit: str
    version: int | None
    sha256: str
    subject: str
    author_name: str
    author_email: str
    date: str


@dataclass(frozen=True)
class VersionToCommit:
    """A diagram version ready to be committed."""

    version: int
    name: str
    canvas: dict[str, Any]
    sha256: str
    created_at: str


def repository_path(git_root: Path, owner_id: int, diagram_id: UUID) -> Path:
    """Where a diagram's bare repository lives (built from an int and a UUID only)."""
    return git_root / "users" / str(int(owner_id)) / f"{diagram_id}.git"


def _git(repo: Path, *args: str, env: dict[str, str] | None = None,
         input_text: str | None = None, check: bool = True) -> str:
    base = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    result = run(["git", f"--git-dir={repo}", *args], env={**base, **(env or {})},
                 input_text=input_text, timeout=60, what=f"git {args[0]}", check=check)
    if not check and result.returncode != 0:
        return ""
    return result.stdout


def ensure_repository(repo: Path) -> None:
    """Create the bare repository (branch ``main``) if it does not exist yet."""
    if (repo / "HEAD").exists():
        return
    repo.parent.mkdir(parents=True, exist_ok=True)
    run(["git", "init", "--quiet", "--bare", "--initial-branch=main", str(repo)],
        env={"GIT_CONFIG_NOSYSTEM": "1"}, timeout=60, what="git init")


def head(repo: Path) -> str | None:
    """The commit ``main`` points at, or None for an empty repository."""
    out = _git(repo, "rev-parse", "--verify", "--quiet", BRANCH, check=False).strip()
    return out or None


def pushed_versions(repo: Path) -> dict[int, str]:
    """Diagram version -> canvas sha256 of every version already committed."""
    return {c.version: c.sha256 for c in log(repo, limit=100_000) if c.version is not None}


def commit_version(repo: Path, diagram_id: UUID, item: VersionToCommit,
                   author: tuple[str, str]) -> str:
    """Commit one version on top of ``main`` and move the branch (compare-and-swap).

    Raises Conflict when ``main`` moved meanwhile, OperationFailed when git fails.
    """
    document = json.dumps(item.canvas, indent=2, ensure_ascii=False) + "\n"
    blob = _git(repo, "hash-object", "-w", "--stdin", input_text=document).strip()
    tree = _git(repo, "mktree", input_text=f"100644 blob {blob}\t{FILENAME}\n").strip()
    parent = head(repo)
    message = (f"{item.name} (version {item.version})\n\n"
               f"Autograph-Diagram: {diagram_id}\nAutograph-Version: {item.version}\n"
               f"Autograph-SHA256: {item.sha256}\n")
    env = {"GIT_AUTHOR_NAME": author[0], "GIT_AUTHOR_EMAIL": author[1],
           "GIT_AUTHOR_DATE": item.created_at, "GIT_COMMITTER_NAME": COMMITTER[0],
           "GIT_COMMITTER_EMAIL": COMMITTER[1]}
    args = ["commit-tree", tree] + (["-p", parent] if parent else [])
    commit = _git(repo, *args, env=env, input_text=message).strip()
    old = parent or "0" * 40
    try:
        _git(repo, "update-ref", "-m", "autograph push", BRANCH, commit, old)
    except OperationFailed:
        raise Conflict("the repository changed during the push; try again") from None
    return commit


def log(repo: Path, limit: int = 100) -> list[Commit]:
    """The newest ``limit`` commits of ``main`` (empty for an empty repository)."""
    if head(repo) is None:
        return []
    fmt = _FIELD.join(["%H", "%an", "%ae", "%aI", "%s",
                       "%(trailers:key=Autograph-Version,valueonly,separator=%x2C)",
                       "%(trailers:key=Autograph-SHA256,valueonly,separator=%x2C)"]) + _RECORD
    out = _git(repo, "log", f"--max-count={int(limit)}", f"--format={fmt}", BRANCH)
    commits = []
    for record in out.split(_RECORD):
        fields = record.strip("\n").split(_FIELD)
        if len(fields) != 7:
            continue
        version = fields[5].strip()
        commits.append(Commit(commit=fields[0], author_name=fields[1], author_email=fields[2],
                              date=fields[3], subject=fields[4],
                              version=int(version) if version.isdigit() else None,
                              sha256=fields[6].strip()))
    return commits


def read_canvas(repo: Path, revision: str | None = None) -> tuple[Commit, dict[str, Any]]:
    """The commit (default: ``main``) and the canvas it holds.

    Raises InvalidInput for a malformed revision, NotFound for an unknown one or an empty
    repository, OperationFailed when the commit holds no readable ``diagram.json``.
    """
    if revision is not None and not _REVISION.match(revision):
        raise InvalidInput("commit must be a hexadecimal commit id (4 to 64 digits)")
    wanted = revision or BRANCH
    found = _git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options",
                 f"{wanted}^{{commit}}", check=False).strip()
    if not found:
        raise NotFound("commit not found in the diagram's repository")
    commit = next((c for c in log(repo, limit=100_000) if c.commit == found), None)
    if commit is None:
        raise NotFound("commit is not on the repository's main branch")
    text = _git(repo, "cat-file", "blob", f"{found}:{FILENAME}", check=False)
    try:
        canvas = json.loads(text)
    except ValueError:
        raise OperationFailed(f"commit {found[:12]} holds no readable {FILENAME}") from None
    if not isinstance(canvas, dict):
        raise OperationFailed(f"commit {found[:12]}: {FILENAME} is not a JSON object")
    return commit, canvas
