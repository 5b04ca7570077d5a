"""S3 clients: our lean bulk client (``autograph.s3.bulk``) against obstore, on one bucket.

Issue #10 item 5: if obstore comes within 1.5x of ours on the fetch path, use it and delete
ours. On a throw-away SeaweedFS (started as ``bench/bucket_backup.py`` starts one, seeded by the
same code: ``--objects`` objects of 2 KB-200 KB log-uniform plus one ``--big-mb`` object), each
round times, in this process:

1. list the bucket;
2. GET every small object, 16 concurrent (ours: ``dr.buckets.transfer.fetch_objects``, the
   bucket backup's engine; obstore: its async API under a semaphore of 16, and its sync API in
   16 threads);
3. the big object read in full (ours: ``fetch_objects``, 8 MiB ranged GETs 3 ahead; obstore: one
   streamed GET, and 8 MiB ranged GETs 4 in flight);
4. PUT ``--puts`` small objects, 16 concurrent (ours: ``dr.buckets.restore.put_objects``, the
   restore's engine; obstore: async and sync as in 2);
5. PUT one object of the big one's size (ours: ``put_objects``, multipart of 8 MiB parts;
   obstore: ``put`` with ``use_multipart``, 8 MiB chunks, 4 in flight).

First, key fidelity: keys the bucket backup's tests copy (tab, newline, a control character, a
directory marker, ...) are stored with ours and read back with obstore; the ones it cannot list
or GET are printed. Every timed phase checks the object count and bytes it moved. Per run: wall
seconds, this process's CPU seconds (every thread: obstore's tokio workers count), the S3
server's CPU seconds and the load average. The machine is shared: the clients alternate in every
round and the ratios obstore/ours are paired by round (median, min-max).

    .venv/bin/pip install -e '.[bench]'      # obstore: a bench-only dependency
    .venv/bin/python bench/s3_clients.py [--objects 3000] [--big-mb 256] [--puts 1000]
                                         [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bucket_backup import SOURCE, seed, server_ticks  # noqa: E402

from autograph.dr.buckets.restore import put_objects  # noqa: E402
from autograph.dr.buckets.transfer import fetch_objects  # noqa: E402
from autograph.s3.bulk import S3Client, S3Endpoint  # noqa: E402
from autograph.s3.response import ListedObject  # noqa: E402
from autograph.stack.lifecycle import Stack  # noqa: E402
from stackutil import make_home, remove_home, stack_settings  # noqa: E402

try:
    import obstore as obs
    from obstore.store import S3Store
except ImportError:  # pragma: no cover - a bench-only dependency
    raise SystemExit("obstore is missing: .venv/bin/pip install -e '.[bench]'") from None

MiB = 1 << 20
PUT_BUCKET = "bench-put"
WORKERS = 16
PART = 8 * MiB
Moved = tuple[int, int]
"""(objects, bytes) a phase moved, checked against what it should have moved."""


@dataclass
class Run:
    """One timed phase of one client."""

    wall: float
    cpu: float
    server_cpu: float
    load: float


@dataclass
class Results:
    """Runs by phase, then by client label."""

    runs: dict[str, dict[str, list[Run]]] = field(default_factory=dict)

    def add(self, phase: str, client: str, run: Run) -> None:
        self.runs.setdefault(phase, {}).setdefault(client, []).append(run)


@dataclass(frozen=True)
class Item:
    """An object to PUT (what ``put_objects`` reads from an archive member)."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str]
    sha256: str


# Ours ------------------------------------------------------------------------------------------
def ours_list(client: S3Client) -> list[ListedObject]:
    return list(client.list_objects(SOURCE))


def ours_get(client: S3Client, objects: list[ListedObject]) -> Moved:
    """The bucket backup's fetch engine, every chunk counted and dropped."""
    sizes: list[int] = []

    def consume(_listed: Any, _head: Any, chunks: Any) -> None:
        sizes.append(sum(len(c) for c in chunks))

    fetch_objects(client, SOURCE, objects, consume, workers=WORKERS, part=PART)
    return len(sizes), sum(sizes)


def ours_put(client: S3Client, bodies: list[tuple[Item, bytes]]) -> Moved:
    """The restore's put engine, from memory."""
    outcome = put_objects(
        client, PUT_BUCKET, ((i, io.BytesIO(b)) for i, b in bodies), workers=WORKERS
    )
    if outcome.failed:
        raise SystemExit(f"ours: {len(outcome.failed)} PUTs failed: {outcome.failed}")
    return outcome.restored, outcome.bytes


# obstore ---------------------------------------------------------------------------------------
def obstore_list(store: S3Store) -> Moved:
    count = size = 0
    for batch in obs.list(store, chunk_size=1000):
        count += len(batch)
        size += sum(meta["size"] for meta in batch)
    return count, size


async def _bounded(limit: int, jobs: list[Callable[[], Any]]) -> list[Any]:
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Any]) -> Any:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


def obstore_get_async(store: S3Store, keys: list[str]) -> Moved:
    async def get(key: str) -> int:
        result = await obs.get_async(store, key)
        return len(await result.bytes_async())

    sizes = asyncio.run(_bounded(WORKERS, [lambda k=k: get(k) for k in keys]))
    return len(sizes), sum(sizes)


def obstore_get_sync(store: S3Store, keys: list[str]) -> Moved:
    with ThreadPoolExecutor(WORKERS) as pool:
        sizes = list(pool.map(lambda k: len(obs.get(store, k).bytes()), keys))
    return len(sizes), sum(sizes)


def obstore_big_stream(store: S3Store, key: str) -> Moved:
    """One GET, its body streamed in chunks of at least 1 MiB."""
    return 1, sum(len(c) for c in obs.get(store, key).stream(min_chunk_size=MiB))


def obstore_big_ranged(store: S3Store, key: str, size: int) -> Moved:
    """8 MiB ranged GETs, 4 in flight (ours: the first part, then 3 ahead)."""

    async def part(start: int) -> int:
        return len(await obs.get_range_async(store, key, start=start, end=min(start + PART, size)))

    parts = asyncio.run(_bounded(4, [lambda s=s: part(s) for s in range(0, size, PART)]))
    return 1, sum(parts)


def obstore_put_async(store: S3Store, bodies: list[tuple[Item, bytes]]) -> Moved:
    async def put(item: Item, body: bytes) -> int:
        await obs.put_async(store, item.key, body, attributes={"Content-Type": item.content_type})
        return len(body)

    sizes = asyncio.run(_bounded(WORKERS, [lambda i=i, b=b: put(i, b) for i, b in bodies]))
    return len(sizes), sum(sizes)


def obstore_put_sync(store: S3Store, bodies: list[tuple[Item, bytes]]) -> Moved:
    def put(pair: tuple[Item, bytes]) -> int:
        obs.put(store, pair[0].key, pair[1], attributes={"Content-Type": pair[0].content_type})
        return len(pair[1])

    with ThreadPoolExecutor(WORKERS) as pool:
        sizes = list(pool.map(put, bodies))
    return len(sizes), sum(sizes)


def obstore_put_big(store: S3Store, key: str, body: bytes) -> Moved:
    """One multipart upload of 8 MiB parts, 4 in flight (ours: ``put_objects``' large path)."""
    obs.put(store, key, io.BytesIO(body), use_multipart=True, chunk_size=PART, max_concurrency=4)
    return 1, len(body)


def ours_put_big(client: S3Client, key: str, body: bytes, sha256: str) -> Moved:
    """Through the restore's engine (``put_objects``: Content-MD5 on every part)."""
    return ours_put(client, [(Item(key, len(body), "application/octet-stream", {}, sha256), body)])


# Key fidelity ----------------------------------------------------------------------------------
AWKWARD_KEYS = [
    "sp ace/tab\there",
    "new\nline",
    "ctl\x01.bin",
    "dir/",
    "..c/a..b/.hidden",
    "pct%2F/q?x=1&y=2#frag",
    "plus+.txt",
    "uni/\u00e9\u952e",
]
"""Keys the bucket backup's own tests copy (tests/integration/test_bucket_backups.py) and a
directory marker: a client that replaces ours must list and read every one of them."""


def key_fidelity(ours: S3Client, store: S3Store, bucket: str) -> list[str]:
    """Store :data:`AWKWARD_KEYS` with ours; return each key obstore cannot list or read back
    byte for byte (with the reason)."""
    for key in AWKWARD_KEYS:
        ours.put_object(bucket, key, b"" if key.endswith("/") else key.encode())
    stored = {o.key: o.size for o in ours.list_objects(bucket)}
    failures = []
    try:
        seen = {meta["path"] for batch in obs.list(store, chunk_size=1000) for meta in batch}
    except Exception as exc:  # one bad key can fail the whole listing: that is the finding
        seen = set()
        failures.append(f"listing the bucket fails: {type(exc).__name__}: {_first(exc)}")
    for key in sorted(stored):
        with ours.get_object(bucket, key) as resp:
            expected = resp.read()
        try:
            got = bytes(obs.get(store, key).bytes())
            problem = "" if got == expected else "reads other bytes"
        except Exception as exc:  # any failure is the finding
            problem = f"GET fails: {type(exc).__name__}: {_first(exc)}"
        if seen and key not in seen:
            problem = ("not listed as such; " + problem).rstrip("; ")
        if problem:
            failures.append(f"{key!r}: {problem}")
    return failures


def _first(exc: BaseException) -> str:
    """The start of an error, escaped (obstore's run to dozens of lines and quote the key)."""
    return str(exc).encode("unicode_escape").decode()[:90]


# The run ---------------------------------------------------------------------------------------
def put_batch(count: int) -> Callable[[str], list[tuple[Item, bytes]]]:
    """``count`` random bodies of 2 KB-200 KB (log-uniform), keyed under a prefix per run."""
    rnd = random.Random(7)
    bodies = [rnd.randbytes(int(2000 * 100 ** rnd.random())) for _ in range(count)]
    digests = [hashlib.sha256(b).hexdigest() for b in bodies]

    def batch(prefix: str) -> list[tuple[Item, bytes]]:
        return [
            (Item(f"{prefix}/{n:05d}.bin", len(b), "application/octet-stream", {}, d), b)
            for n, (b, d) in enumerate(zip(bodies, digests, strict=True))
        ]

    return batch


def timed(fn: Callable[[], Moved], expect: Moved, server: int, label: str) -> Run:
    """Run one phase; its (objects, bytes) must be ``expect``."""
    load = os.getloadavg()[0]
    ticks, cpu, start = server_ticks(server), time.process_time(), time.monotonic()
    moved = fn()
    run = Run(
        time.monotonic() - start, time.process_time() - cpu, server_ticks(server) - ticks, load
    )
    if moved != expect:
        raise SystemExit(f"{label}: moved {moved}, expected {expect}")
    print(
        f"  {label:34s} {run.wall:7.2f} s  cpu {run.cpu:6.2f} s  S3 server cpu "
        f"{run.server_cpu:6.2f} s  load {run.load:5.1f}",
        flush=True,
    )
    return run


def phases(
    ours: S3Client,
    store: S3Store,
    put_store: S3Store,
    listed: list[ListedObject],
    big: ListedObject,
    puts: Callable[[str], list[tuple[Item, bytes]]],
    put_count: int,
) -> list[tuple[str, Moved, dict[str, Callable[[str], Moved]]]]:
    """Each phase: its name, what it must move, and its runs by client (given a run tag)."""
    small = [o for o in listed if o.key != big.key]
    keys = [o.key for o in small]
    everything = (len(listed), sum(o.size for o in listed))
    put_bytes = sum(i.size for i, _ in puts("x"))
    big_body = os.urandom(big.size)  # as big as the big object, uploaded
    big_sha256 = hashlib.sha256(big_body).hexdigest()  # known beforehand, as from a manifest

    def ours_listing(_tag: str) -> Moved:
        found = ours_list(ours)
        return len(found), sum(o.size for o in found)

    return [
        ("list", everything, {"ours": ours_listing, "obstore": lambda _t: obstore_list(store)}),
        (
            "get small",
            (len(small), sum(o.size for o in small)),
            {
                "ours": lambda _t: ours_get(ours, small),
                "obstore async": lambda _t: obstore_get_async(store, keys),
                "obstore sync x16": lambda _t: obstore_get_sync(store, keys),
            },
        ),
        (
            "get big",
            (1, big.size),
            {
                "ours": lambda _t: ours_get(ours, [big]),
                "obstore stream": lambda _t: obstore_big_stream(store, big.key),
                "obstore ranged x4": lambda _t: obstore_big_ranged(store, big.key, big.size),
            },
        ),
        (
            "put small",
            (put_count, put_bytes),
            {
                "ours": lambda t: ours_put(ours, puts(f"ours-{t}")),
                "obstore async": lambda t: obstore_put_async(put_store, puts(f"oa-{t}")),
                "obstore sync x16": lambda t: obstore_put_sync(put_store, puts(f"os-{t}")),
            },
        ),
        (
            "put big",
            (1, len(big_body)),
            {
                "ours": lambda t: ours_put_big(ours, f"big-ours-{t}", big_body, big_sha256),
                "obstore multipart x4": lambda t: obstore_put_big(put_store, f"big-o-{t}",
                                                                  big_body),
            },
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--big-mb", type=int, default=256)
    parser.add_argument("--puts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    if options.big_mb < 1:
        parser.error("--big-mb must be at least 1 (phase 3 reads the big object)")
    home = make_home("autograph-bench-")
    stack = Stack(stack_settings(home))
    try:
        stack.up(only=["s3"])
        settings, creds = stack.settings, stack.creds
        ours = S3Client(S3Endpoint.application(settings, creds))
        server = int(stack.supervisor.all_info()["s3"].pid)
        print(f"seeding {options.objects} objects + {options.big_mb} MiB ...", flush=True)
        seed(ours, options.objects, options.big_mb)
        ours.create_bucket(PUT_BUCKET)
        config = {
            "endpoint": settings.s3_url,
            "access_key_id": creds.s3_access_key,
            "secret_access_key": creds.s3_secret_key,
            "region": "us-east-1",
            "virtual_hosted_style_request": False,
        }
        options_http = {"allow_http": True}
        store = S3Store(SOURCE, client_options=options_http, **config)
        put_store = S3Store(PUT_BUCKET, client_options=options_http, **config)
        ours.create_bucket("bench-keys")
        keys_store = S3Store("bench-keys", client_options=options_http, **config)
        failures = key_fidelity(ours, keys_store, "bench-keys")
        print(f"key fidelity ({len(AWKWARD_KEYS)} keys): {len(failures)} obstore failure(s)")
        for line in failures:
            print(f"  {line}")
        listed = ours_list(ours)
        big = max(listed, key=lambda o: o.size)
        print(f"bucket: {len(listed)} objects, {sum(o.size for o in listed) / 1e6:.0f} MB")
        plan = phases(ours, store, put_store, listed, big, put_batch(options.puts), options.puts)
        results = Results()
        for r in range(options.rounds):
            print(f"round {r + 1}", flush=True)
            for name, expect, clients in plan:
                labels = list(clients)
                order = labels[r % len(labels) :] + labels[: r % len(labels)]
                for label in order:
                    results.add(
                        name,
                        label,
                        timed(
                            lambda c=clients[label], t=str(r): c(t),
                            expect,
                            server,
                            f"{name}: {label}",
                        ),
                    )
        report(results, failures)
    finally:
        stack.down()
        remove_home(home)


def _ratios(runs: list[Run], base: list[Run], attr: str) -> list[float]:
    return [getattr(a, attr) / getattr(b, attr) for a, b in zip(runs, base, strict=True)]


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(results: Results, key_failures: list[str]) -> None:
    """A markdown table of medians and paired ratios, then the issue's 1.5x rule (speed) and
    the key fidelity that a replacement needs besides."""
    print(
        "\n| phase | client | wall s | CPU s | S3 server CPU s | wall obstore/ours "
        "| CPU obstore/ours |"
    )
    print("|---|---|---|---|---|---|---|")
    best: dict[str, tuple[str, float]] = {}
    for phase, clients in results.runs.items():
        base = clients["ours"]
        for label, runs in clients.items():
            med = {
                a: statistics.median(getattr(r, a) for r in runs)
                for a in ("wall", "cpu", "server_cpu")
            }
            wall = cpu = "-"
            if label != "ours":
                wall, cpu = (_spread(_ratios(runs, base, a)) for a in ("wall", "cpu"))
                ratio = statistics.median(_ratios(runs, base, "wall"))
                if phase not in best or ratio < best[phase][1]:
                    best[phase] = (label, ratio)
            print(
                f"| {phase} | {label} | {med['wall']:.2f} | {med['cpu']:.2f} | "
                f"{med['server_cpu']:.2f} | {wall} | {cpu} |"
            )
    loads = [r.load for c in results.runs.values() for rs in c.values() for r in rs]
    print(f"\nload average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}")
    for phase in ("get small", "get big", "put small", "put big"):
        if phase not in best:
            continue
        label, ratio = best[phase]
        verdict = "within" if ratio <= 1.5 else "outside"
        print(
            f"{phase}: best obstore ({label}) / ours = {ratio:.2f} (median of paired rounds): "
            f"{verdict} the 1.5x rule"
        )

    if key_failures:
        print(
            f"but obstore cannot copy every key ({len(key_failures)} key fidelity failures "
            "above): no drop-in replacement for the bucket backup"
        )


if __name__ == "__main__":
    main()
