"""Bucket-archive throughput: our writer and reader against Python's tarfile + gzip.

Generates ~240 MB of objects in memory (sizes log-uniform between 2 KB and 200 KB, alternately
compressible JSON and random bytes, like the issue's benchmark bucket), writes each archive to a
temporary folder and prints MB/s (object bytes per second of wall time), the CPU seconds spent
(this process and its children: pigz), the speed-up over the baseline (tarfile "w:gz" at its
default level 9, the obvious implementation), and the output sizes. Ours also hashes every object
and the archive; the tarfile and pigz peers hash nothing.

    python bench/archive_throughput.py [--mb 240] [--big-mb 0] [--dir /tmp]

``--big-mb N`` adds one object of N MB streamed from a generator (1 MiB chunks) to our writer
only, and prints its time and the process's peak RSS before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import resource
import shutil
import subprocess
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from autograph.dr.buckets import archive, archive_read, members
from autograph.dr.buckets.archive import ObjectInfo

Objects = list[tuple[str, bytes]]


def make_objects(total_mb: int, seed: int = 5) -> Objects:
    """Return (key, bytes) pairs adding up to about ``total_mb`` MB."""
    rnd = random.Random(seed)
    rows = [
        json.dumps(
            {
                "id": rnd.randrange(10**9),
                "type": rnd.choice(["rect", "ellipse", "arrow", "text"]),
                "x": round(rnd.uniform(0, 4000), 2),
                "y": round(rnd.uniform(0, 4000), 2),
                "label": f"node {rnd.randrange(10**5)}",
                "style": {"fill": f"#{rnd.randrange(16**6):06x}", "stroke": rnd.randrange(1, 5)},
            }
        )
        for _ in range(60_000)
    ]
    pool = ("[" + ",".join(rows) + "]").encode()
    objects: Objects = []
    total = 0
    while total < total_mb * 1_000_000:
        size = int(math.exp(rnd.uniform(math.log(2_000), math.log(200_000))))
        if len(objects) % 2:
            data = rnd.randbytes(size)
        else:
            start = rnd.randrange(len(pool) - size)
            data = pool[start : start + size]
        objects.append((f"diagrams/{len(objects) % 97:02d}/object-{len(objects):05d}.bin", data))
        total += size
    return objects


def info_for(key: str, data: bytes) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=len(data),
        etag=hashlib.md5(data[:64]).hexdigest(),
        content_type="application/octet-stream",
        last_modified="2025-01-01T00:00:00+00:00",
    )


def tarfile_gz(objects: Objects, path: Path, level: int) -> None:
    with tarfile.open(path, "w:gz", compresslevel=level) as tar:
        for key, data in objects:
            entry = tarfile.TarInfo(key)
            entry.size = len(data)
            tar.addfile(entry, io.BytesIO(data))


def tarfile_pigz(objects: Objects, path: Path) -> None:
    with path.open("wb") as out:
        pigz = subprocess.Popen(["pigz", "-1", "-c"], stdin=subprocess.PIPE, stdout=out)
        assert pigz.stdin is not None
        with tarfile.open(fileobj=pigz.stdin, mode="w|") as tar:
            for key, data in objects:
                entry = tarfile.TarInfo(key)
                entry.size = len(data)
                tar.addfile(entry, io.BytesIO(data))
        pigz.stdin.close()
        pigz.wait()


def chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield view[start : start + size].tobytes()


def ours(objects: Objects, path: Path, threads: int = 1) -> None:
    with path.open("wb") as out, archive.ArchiveWriter(out, spool_dir=path.parent) as writer:
        if threads == 1:
            for key, data in objects:
                writer.add(info_for(key, data), chunks(data))
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda o: writer.add(info_for(*o), chunks(o[1])), objects))
        writer.close()


def tarfile_read(path: Path) -> None:
    with tarfile.open(path, "r:gz") as tar:
        for entry in tar:
            handle = tar.extractfile(entry)
            if handle is not None:
                hashlib.sha256(handle.read()).hexdigest()


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, size: int, run: Callable[[], object], base: float | None) -> float:
    """Run once; print wall time, MB/s, CPU seconds (ours plus children) and the speed-up."""
    os.sync()  # so that one run's write-back does not slow the next
    started, cpu = time.perf_counter(), cpu_seconds()
    run()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    speedup = f"{base / seconds:5.1f}x" if base else "  1.0x"
    print(
        f"  {label:44s} {seconds:6.2f} s {size / seconds / 1e6:7.1f} MB/s"
        f" cpu {cpu:6.2f} s {speedup}"
    )
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=240)
    parser.add_argument("--big-mb", type=int, default=0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    objects = make_objects(args.mb)
    size = sum(len(data) for _, data in objects)
    print(f"{len(objects)} objects, {size / 1e6:.0f} MB (half JSON, half random)")
    work = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        paths = {name: work / f"{name}.tar.gz" for name in ("gz9", "gz1", "pigz", "ours", "ours8")}
        print("write:")
        base = timed(
            "tarfile w:gz, default level 9 (baseline)",
            size,
            lambda: tarfile_gz(objects, paths["gz9"], 9),
            None,
        )
        timed("tarfile w:gz, level 1", size, lambda: tarfile_gz(objects, paths["gz1"], 1), base)
        timed(
            "tarfile w| piped into pigz -1",
            size,
            lambda: tarfile_pigz(objects, paths["pigz"]),
            base,
        )
        timed(
            "ours: ArchiveWriter (ISA-L level 1)", size, lambda: ours(objects, paths["ours"]), base
        )
        timed(
            "ours: ArchiveWriter, add() from 8 threads",
            size,
            lambda: ours(objects, paths["ours8"], threads=8),
            base,
        )
        print("sizes (MB):", {k: round(p.stat().st_size / 1e6, 1) for k, p in paths.items()})
        print("read and check every object's sha256:")
        base = timed(
            "tarfile r:gz + hashlib (baseline)", size, lambda: tarfile_read(paths["ours"]), None
        )
        timed(
            "ours: verify_archive (ISA-L inflate)",
            size,
            lambda: archive_read.verify_archive(paths["ours"]),
            base,
        )
        original, members.CODEC = members.CODEC, zlib
        timed(
            "ours: verify_archive, inflating with zlib",
            size,
            lambda: archive_read.verify_archive(paths["ours"]),
            base,
        )
        members.CODEC = original
        if args.big_mb:
            big(args.big_mb, work)
    finally:
        shutil.rmtree(work)


def big(megabytes: int, work: Path) -> None:
    block = os.urandom(1 << 20)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    info = ObjectInfo(key="big/object.bin", size=megabytes << 20)
    path = work / "big.tar.gz"
    started = time.perf_counter()
    with path.open("wb") as out:
        archive.write_archive(out, [(info, (block for _ in range(megabytes)))], spool_dir=work)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(
        f"one {megabytes} MiB object: {seconds:.2f} s ({megabytes / seconds:.0f} MiB/s), "
        f"peak RSS {rss} MiB before, {after} MiB after"
    )
    started = time.perf_counter()
    archive_read.verify_archive(path)
    print(f"  verified in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
