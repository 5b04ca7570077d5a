"""The drill's workload: a realistic dataset loaded through the services' HTTP API, and a
background writer that keeps committing (diagrams through the API, objects into S3) and logs
every acknowledged write with its time, for the RPO.

Requests go to the gateway when the stack runs one, else straight to the auth and diagram
services. Exports are written into the ``exports`` bucket directly: they are what the export
service produces, and this stack may not run one.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograph.clock import Clock, utc_now
from autograph.dr.drill.rpo import AckedWrite
from autograph.dr.models import ProgressFn, no_progress
from autograph.dr.recovery.client import ApiClient
from autograph.errors import OperationFailed

EXPORTS_PREFIX = "dataset/"
WRITER_PREFIX = "drill-writer/"


# The dataset -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DatasetSpec:
    """How much to load. The defaults make a small dataset (seconds to load)."""

    users: int = 3
    diagrams_per_user: int = 4
    versions_per_diagram: int = 3
    uploads: int = 6
    upload_bytes: int = 24_000
    exports: int = 6
    export_bytes: int = 30_000
    canvas_nodes: int = 12
    workers: int = 8


@dataclass
class Account:
    email: str
    password: str
    token: str = ""


@dataclass
class Dataset:
    """What was loaded, with what to expect when reading it back."""

    accounts: list[Account] = field(default_factory=list)
    diagrams: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> expectations
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)   # id -> expectations
    exports: dict[str, str] = field(default_factory=dict)              # key -> etag

    def summary(self) -> dict[str, int]:
        """Counts for the report."""
        return {"users": len(self.accounts), "diagrams": len(self.diagrams),
                "versions": sum(d["versions"] for d in self.diagrams.values()),
                "uploads": len(self.uploads), "exports": len(self.exports)}


def canvas(rng: random.Random, nodes: int) -> dict[str, Any]:
    """A plausible diagram canvas: nodes with positions and labels, and edges between them."""
    shapes = ("rect", "ellipse", "diamond", "cylinder")
    items = [{"id": f"n{i}", "type": rng.choice(shapes), "x": rng.randint(0, 1600),
              "y": rng.randint(0, 900), "label": f"Service {rng.randint(1, 999)}"}
             for i in range(nodes)]
    edges = [{"from": f"n{rng.randrange(nodes)}", "to": f"n{rng.randrange(nodes)}"}
             for _ in range(nodes)]
    return {"nodes": items, "edges": edges, "seed": rng.random()}


def _sha256_json(value: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def new_account(prefix: str) -> Account:
    """A unique account with a password the auth service accepts."""
    return Account(email=f"{prefix}-{secrets.token_hex(4)}@drill.example.com",
                   password=secrets.token_urlsafe(12) + "Aa1!")


def load_dataset(api: ApiClient, s3: Any, spec: DatasetSpec, *, seed: int = 7,
                 exports_bucket: str = "exports", progress: ProgressFn = no_progress
                 ) -> Dataset:
    """Register users, create diagrams with several versions and uploads through the API, and
    put export files into the exports bucket. Raises OperationFailed on any refused request."""
    rng = random.Random(seed)
    data = Dataset()
    for _ in range(spec.users):
        account = new_account("user")
        api.register(account.email, account.password)
        account.token = api.login(account.email, account.password)
        data.accounts.append(account)
    progress(f"{len(data.accounts)} users registered", None)
    jobs = [(data.accounts[i % spec.users], random.Random(rng.random()))
            for i in range(spec.users * spec.diagrams_per_user)]

    def one_diagram(job: tuple[Account, random.Random]) -> tuple[str, dict[str, Any]]:
        account, local = job
        doc = canvas(local, spec.canvas_nodes)
        created = api.create_diagram(account.token, f"Architecture {local.randint(1, 99999)}",
                                     doc)
        for _ in range(spec.versions_per_diagram - 1):
            doc = canvas(local, spec.canvas_nodes)
            api.update_diagram(account.token, str(created["id"]), doc)
        return str(created["id"]), {"owner": account.email, "versions":
                                    spec.versions_per_diagram, "sha256": _sha256_json(doc),
                                    "canvas": doc}

    with ThreadPoolExecutor(spec.workers) as pool:
        data.diagrams = dict(pool.map(one_diagram, jobs))
    progress(f"{len(data.diagrams)} diagrams with {spec.versions_per_diagram} versions each", None)
    owners = {a.email: a for a in data.accounts}
    ids = list(data.diagrams)
    for index in range(spec.uploads if ids else 0):
        diagram_id = ids[index % len(ids)]
        account = owners[data.diagrams[diagram_id]["owner"]]
        blob = rng.randbytes(spec.upload_bytes // 2) + b"#" * (spec.upload_bytes // 2)
        made = api.upload(account.token, diagram_id, f"attachment-{index}.bin", blob,
                          "application/octet-stream")
        data.uploads[str(made["id"])] = {"diagram_id": diagram_id, "owner": account.email,
                                         "sha256": hashlib.sha256(blob).hexdigest()}
    for index in range(spec.exports):
        key = f"{EXPORTS_PREFIX}export-{index:05d}.png"
        answer = s3.put_object(Bucket=exports_bucket, Key=key,
                               Body=rng.randbytes(spec.export_bytes), ContentType="image/png")
        data.exports[key] = answer["ETag"].strip('"')
    progress(f"{len(data.uploads)} uploads, {len(data.exports)} exports", None)
    return data


def check_dataset(api: ApiClient, s3: Any, data: Dataset, *, exports_bucket: str = "exports",
                  workers: int = 8) -> dict[str, Any]:
    """Read the dataset back through the API (and S3 for exports) and compare: every diagram's
    canvas and version count, every upload's bytes, every export's etag. Returns counts of
    ``checked`` and ``mismatched`` per kind, with a sample of problems."""
    owners = {a.email: a for a in data.accounts}
    problems: list[str] = []

    def diagram(item: tuple[str, dict[str, Any]]) -> bool:
        diagram_id, expected = item
        token = owners[expected["owner"]].token
        try:
            body = api.get_diagram(token, diagram_id)
            count = len(api.versions(token, diagram_id))
        except OperationFailed as exc:
            problems.append(f"diagram {diagram_id}: {exc}")
            return False
        if _sha256_json(body.get("canvas") or {}) != expected["sha256"]:
            problems.append(f"diagram {diagram_id}: canvas differs")
            return False
        if count != expected["versions"]:
            problems.append(f"diagram {diagram_id}: {count} versions, expected "
                            f"{expected['versions']}")
            return False
        return True

    def upload(item: tuple[str, dict[str, Any]]) -> bool:
        upload_id, expected = item
        try:
            blob = api.download(owners[expected["owner"]].token, expected["diagram_id"],
                                upload_id)
        except OperationFailed as exc:
            problems.append(f"upload {upload_id}: {exc}")
            return False
        if hashlib.sha256(blob).hexdigest() != expected["sha256"]:
            problems.append(f"upload {upload_id}: content differs")
            return False
        return True

    with ThreadPoolExecutor(workers) as pool:
        diagrams_ok = sum(pool.map(diagram, data.diagrams.items()))
        uploads_ok = sum(pool.map(upload, data.uploads.items()))
    exports_ok = 0
    for key, etag in data.exports.items():
        try:
            found = s3.head_object(Bucket=exports_bucket, Key=key)["ETag"].strip('"')
        except Exception as exc:  # any S3 error means the export is not readable
            problems.append(f"export {key}: {type(exc).__name__}")
            continue
        if found == etag:
            exports_ok += 1
        else:
            problems.append(f"export {key}: etag differs")
    return {
        "diagrams": {"checked": len(data.diagrams), "mismatched": len(data.diagrams)
                     - diagrams_ok},
        "uploads": {"checked": len(data.uploads), "mismatched": len(data.uploads) - uploads_ok},
        "exports": {"checked": len(data.exports), "mismatched": len(data.exports) - exports_ok},
        "problems": sorted(problems)[:20],
    }


# The writer --------------------------------------------------------------------------------

class Writer:
    """Commits continuously in a thread, row + object pairs through the API: a diagram (its
    row and its canvas object), then an upload to the writer's own diagram (its row and its
    bytes), and so on; each acknowledged write is appended (and flushed) to ``log_path``.
    The uploads are the object writes the objects' RPO is measured on: like every object the
    services write, each is recorded in the outbox with its row (issue 12)."""

    def __init__(self, api: ApiClient, s3: Any, account: Account, log_path: Path, *,
                 bucket: str = "uploads", run_id: str = "", interval: float = 0.05,
                 clock: Clock = utc_now) -> None:
        self.api, self.s3, self.account = api, s3, account
        self.log_path = log_path
        self.bucket = bucket
        self.prefix = f"{WRITER_PREFIX}{run_id or secrets.token_hex(4)}/"
        self.interval = interval
        self.clock = clock
        self.acknowledged = {"database": 0, "object": 0}
        self.failed = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._idle = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="drill-writer", daemon=True)
        self._seq = 0
        self._home = ""

    def start(self) -> None:
        """Make the diagram the uploads go to, then start committing."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._home = str(self.api.create_diagram(self.account.token, "writer uploads",
                                                 {"writer": "uploads"})["id"])
        self.prefix = f"{self._home}/"
        self._thread.start()

    def pause(self, timeout: float = 30.0) -> None:
        """Stop committing after the write in flight (which is acknowledged or failed)."""
        self._idle.clear()
        self._running.clear()
        if self._thread.is_alive():
            self._idle.wait(timeout)

    def resume(self) -> None:
        """Commit again after a pause."""
        self._running.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop for good and wait for the thread."""
        self._stop.set()
        self._running.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _record(self, write: AckedWrite) -> None:
        with open(self.log_path, "a", encoding="utf-8") as handle:
            handle.write(write.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.acknowledged[write.kind] += 1

    def _write_once(self) -> None:
        self._seq += 1
        if self._seq % 2:
            doc = {"writer": self._seq, "nodes": [{"id": "a", "label": str(self._seq)}]}
            made = self.api.create_diagram(self.account.token, f"writer {self._seq:06d}", doc)
            self._record(AckedWrite("database", str(made["id"]), self.clock(),
                                    made.get("sha256")))
        else:
            made = self.api.upload(self.account.token, self._home, f"w{self._seq:06d}.json",
                                   json.dumps({"seq": self._seq}).encode(),
                                   "application/json")
            # the key is the upload's object key; presence is the survival test (its bytes
            # are checked against the row's sha256 by the service on every read)
            self._record(AckedWrite("object", f"{self.prefix}{made['id']}", self.clock()))

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._running.is_set():
                self._idle.set()
                self._running.wait()
                continue
            try:
                self._write_once()
            except Exception as exc:  # a refused write is not acknowledged: count it, go on
                self.failed += 1
                self.last_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            time.sleep(self.interval)
        self._idle.set()

    def stats(self) -> dict[str, Any]:
        """Counts for the report."""
        return {"database_acknowledged": self.acknowledged["database"],
                "objects_acknowledged": self.acknowledged["object"], "failed": self.failed,
                "last_error": self.last_error, "objects_prefix": self.prefix}


def surviving_diagrams(api: ApiClient, account: Account) -> dict[str, str | None]:
    """The writer's diagrams present now: id -> sha256 of the current version."""
    return {str(d["id"]): d.get("sha256") for d in api.list_diagrams(account.token)}


def surviving_objects(s3: Any, bucket: str, prefix: str) -> dict[str, str | None]:
    """The objects under ``prefix`` present now: key -> etag."""
    found: dict[str, str | None] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"].strip('"')
    return found
