"""Object protection (issue 12): how long an object waits before every backup tier holds it,
and what recording it in the outbox costs the write path, in one run.

On a throw-away stack (PostgreSQL + SeaweedFS, started here) diagrams are created through the
diagram service's own write path (``store.create_diagram``: object put, then the row and its
outbox record in one transaction), in-process so HTTP noise stays out:

- latency: blocks of ``--block`` writes with the outbox record and without it (the record
  replaced by a no-op for that block), alternating, ``--rounds`` times each; per-write
  median and p90 of each side and their ratio (target: with / without <= 1.10);
- lag: a writer commits ``--rate`` diagrams a second for ``--seconds`` while the replicator
  runs as the gateway runs it (a pass every ``outbox_interval_seconds``); per object, the
  time from the write's acknowledgement to its blob being stored in the last tier (local and
  S3); median and p99 (target: p99 <= 10 s).

    nice -n 10 python bench/object_protection.py [--rate 10 --seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from autograph.dr.buckets.outbox import Replicator
from autograph.s3.boto import app_client
from autograph.services.auth.accounts import prepare_auth_database
from autograph.services.common.resources import Resources
from autograph.services.diagrams import outbox
from autograph.services.diagrams import store as diagram_store
from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, stack_settings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


async def write(resources: Resources, owner: int, label: str) -> tuple[float, str]:
    """One diagram; its latency in seconds and its canvas sha256."""
    began = time.perf_counter()
    made = await diagram_store.create_diagram(resources, owner, label,
                                              {"label": label, "salt": uuid.uuid4().hex,
                                               "nodes": [{"id": f"n{i}"} for i in range(20)]})
    return time.perf_counter() - began, made.sha256


async def latency(resources: Resources, owner: int, rounds: int,
                  block: int) -> dict[str, list[float]]:
    real = outbox.record
    found: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for side in ("with", "without"):
            outbox.record = real if side == "with" else _noop  # type: ignore[assignment]
            try:
                for _ in range(block):
                    found[side].append((await write(resources, owner, side))[0])
            finally:
                outbox.record = real  # type: ignore[assignment]
    return found


async def lag(stack: Stack, resources: Resources, owner: int, rate: float,
              seconds: float) -> list[float]:
    shipped: dict[str, float] = {}
    lock = threading.Lock()

    def on_ship(_tier: str, blob: str) -> None:
        with lock:
            shipped[blob.removesuffix(".z")] = time.monotonic()  # the last tier's time

    replicator = Replicator(stack.settings, stack.creds, on_ship=on_ship)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(stack.settings.outbox_interval_seconds):
            replicator.run_pass()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    acked: dict[str, float] = {}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        began = time.monotonic()
        _took, sha = await write(resources, owner, "lag")
        acked[sha] = time.monotonic()
        await asyncio.sleep(max(0.0, 1.0 / rate - (time.monotonic() - began)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not set(acked) <= set(shipped):
        await asyncio.sleep(0.2)
    stop.set()
    thread.join(10)
    missing = set(acked) - set(shipped)
    if missing:
        raise SystemExit(f"{len(missing)} objects never shipped")
    return [shipped[sha] - at for sha, at in acked.items()]


async def main_async(stack: Stack, args: argparse.Namespace) -> None:
    resources = Resources(stack.settings, stack.creds, prepare_database=prepare_auth_database)
    try:
        pool = await resources.db()
        async with pool.connection() as conn:
            row = await (await conn.execute("SELECT min(id) FROM users")).fetchone()
        owner = int(row[0]) if row else 1
        for _ in range(20):  # warm the pool, S3 links and PostgreSQL caches
            await write(resources, owner, "warm-up")
        sides = await latency(resources, owner, args.rounds, args.block)
        lags = await lag(stack, resources, owner, args.rate, args.seconds)
    finally:
        await resources.close()
    w, wo = sides["with"], sides["without"]
    ratio = statistics.median(w) / statistics.median(wo)
    print(f"write path (create_diagram), {len(w)} writes a side, alternating blocks of "
          f"{args.block}:")
    print(f"  {'':16}{'median ms':>10}{'p90 ms':>10}")
    for name, values in (("with outbox", w), ("without outbox", wo)):
        print(f"  {name:16}{statistics.median(values) * 1e3:>10.2f}"
              f"{pct(values, 0.9) * 1e3:>10.2f}")
    print(f"  ratio with/without (median): {ratio:.3f}  (target <= 1.10)")
    print(f"protection lag, {len(lags)} objects at {args.rate:g}/s for {args.seconds:g} s, "
          f"pass every {stack.settings.outbox_interval_seconds:g} s, tiers local + s3:")
    print(f"  median {statistics.median(lags):.2f} s, p99 {pct(lags, 0.99):.2f} s, "
          f"max {max(lags):.2f} s  (target p99 <= 10 s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--block", type=int, default=20)
    args = parser.parse_args()
    home = make_home("autograph-bench-outbox-")
    stack = Stack(stack_settings(home))
    try:
        stack.up()
        s3 = app_client(stack.settings, stack.creds)
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for bucket in set(stack.settings.app_buckets) - existing:
            s3.create_bucket(Bucket=bucket)
        asyncio.run(main_async(stack, args))
    finally:
        stack.down()
        remove_home(home)


if __name__ == "__main__":
    main()
