"""Tar members: the former hand-written header writer and parser against the standard ``tarfile``.

Bucket archives used to write and parse their tar headers by hand; they now use
``tarfile.TarInfo.tobuf(PAX_FORMAT)`` to write and ``tarfile.open(mode="r|")`` to read, over the
same ISA-L gunzip (``autograph.dr.buckets.members``). The rule (issue #10, item 6): keep a
hand-written parser of untrusted input only if it is at least 1.5x faster. This measures it on
the bucket bench's default data (``bench/bucket_backup.py``: ``--objects`` objects of 2 KB-200 KB,
log-uniform, even ones compressible JSON, odd ones random, plus one ``--big-mb`` object), in one
process, alternating which goes first:

- write: every member's header, body (sha256 on the way, as the archive does) and padding,
  gzip-compressed by ISA-L level 1 into a file;
- read: the same archive gunzipped by ISA-L, every member parsed and its sha256 checked.

The former code is read from git (``git show 8bf7bdc^:...members.py``, the last version with the
hand-written headers), so this needs a checkout with history. Before timing, each reader reads
the archive the other writer made (old archives still restore). Ratios are standard /
hand-written CPU seconds per round (> 1: the hand-written one is faster).

    .venv/bin/python bench/tar_members.py [--objects 5000] [--big-mb 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
FORMER = "8bf7bdc^:src/autograph/dr/buckets/members.py"
MiB = 1 << 20
ROW = b'{"id": 1, "type": "rect", "x": 12.5, "y": 40.25, "label": "node", "edges": [2, 3]}'

from autograph.dr.buckets import members as current  # noqa: E402


def former_module(folder: Path) -> ModuleType:
    """The hand-written members module as it was, loaded from git."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", FORMER], check=True,
                            capture_output=True).stdout
    path = folder / "former_members.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("former_members", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["former_members"] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


def dataset(objects: int) -> list[tuple[str, bytes]]:
    """The bucket bench's small objects (same sizes and mix, same seed)."""
    rnd = random.Random(2024)
    sizes = [int(2000 * 100 ** rnd.random()) for _ in range(objects)]
    found = []
    for i, size in enumerate(sizes):
        if i % 2:
            found.append((f"objects/uploads/{i:05d}.bin", os.urandom(size)))
        else:
            body = (b"[" + b",\n".join([ROW] * (size // len(ROW) + 1)))[:size]
            found.append((f"objects/diagrams/{i:05d}.json", body))
    return found


def chunks(body: bytes | tuple[bytes, int]) -> Iterator[bytes]:
    """A small body as is; the big one as its 16 MiB random block repeated."""
    if isinstance(body, bytes):
        yield body
        return
    block, size = body
    for start in range(0, size, len(block)):
        yield block[: min(len(block), size - start)]


def write(module: ModuleType, items: list[tuple[str, bytes | tuple[bytes, int]]],
          out: Path) -> dict[str, str]:
    """An archive of ``items`` with ``module.tar_header``; returns name -> sha256."""
    codec = current.CODEC
    engine = codec.compressobj(1, codec.DEFLATED, 31)
    digests = {}
    with out.open("wb") as sink:
        for name, body in items:
            size = len(body) if isinstance(body, bytes) else body[1]
            sink.write(engine.compress(module.tar_header(name, size, 1_700_000_000)))
            digest = hashlib.sha256()
            for piece in chunks(body):
                digest.update(piece)
                sink.write(engine.compress(piece))
            sink.write(engine.compress(module.padding(size)))
            digests[name] = digest.hexdigest()
        sink.write(engine.compress(b"\0" * (2 * current.BLOCK)))
        sink.write(engine.flush())
    return digests


def read(module: ModuleType, archive: Path, digests: dict[str, str]) -> int:
    """Read every member with ``module``'s reader, checking each sha256; returns the count."""
    count = 0
    with archive.open("rb") as raw:
        tar = module.TarReader(raw)
        while (member := tar.next_member()) is not None:
            name, size = member
            stream = module.MemberStream(tar, size, digests[name], name)
            while stream.read(current.READ_CHUNK):
                pass
            count += 1
        tar.finish()
    if count != len(digests):
        raise SystemExit(f"{module.__name__} read {count} members of {len(digests)}")
    return count


def cpu(call: object, *args: object) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one call."""
    start_cpu, start = time.process_time(), time.perf_counter()
    call(*args)  # type: ignore[operator]
    return time.process_time() - start_cpu, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--big-mb", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tar-bench-") as scratch:
        folder = Path(scratch)
        former = former_module(folder)
        items: list[tuple[str, bytes | tuple[bytes, int]]] = list(dataset(args.objects))
        if args.big_mb:
            items.append(("objects/media/big.bin", (os.urandom(16 * MiB), args.big_mb * MiB)))
        total = sum(len(b) if isinstance(b, bytes) else b[1] for _, b in items)
        print(f"{len(items)} members, {total / MiB:.0f} MiB; load average "
              f"{os.getloadavg()[0]:.2f}", flush=True)
        contenders = {"hand-written": former, "tarfile": current}
        files = {label: folder / f"{label}.tar.gz" for label in contenders}
        digests = {label: write(m, items, files[label]) for label, m in contenders.items()}
        for label, module in contenders.items():  # each reads the other's archive
            other = next(o for o in contenders if o != label)
            read(module, files[other], digests[other])
        print("cross-check: each reader read the other writer's archive, every sha256 matched")
        times: dict[str, dict[str, list[float]]] = {
            op: {label: [] for label in contenders} for op in ("write", "read")}
        for round_no in range(args.rounds):
            order = list(contenders) if round_no % 2 == 0 else list(contenders)[::-1]
            for label in order:
                used, wall = cpu(write, contenders[label], items, files[label])
                times["write"][label].append(used)
                print(f"  round {round_no + 1} write {label:12s} cpu {used:6.2f} s  "
                      f"wall {wall:6.2f} s", flush=True)
            for label in order:
                used, wall = cpu(read, contenders[label], files["tarfile"], digests["tarfile"])
                times["read"][label].append(used)
                print(f"  round {round_no + 1} read  {label:12s} cpu {used:6.2f} s  "
                      f"wall {wall:6.2f} s", flush=True)
        for op, runs in times.items():
            ratios = [s / h for s, h in zip(runs["tarfile"], runs["hand-written"], strict=True)]
            print(f"{op}: tarfile / hand-written CPU, paired: "
                  + " ".join(f"{r:.2f}" for r in ratios)
                  + f"  median {statistics.median(ratios):.2f}x "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
        print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
