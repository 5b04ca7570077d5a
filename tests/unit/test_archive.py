"""Bucket archives: round trips of odd keys, streaming memory, corruption, real tar and tarfile."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import tarfile
import threading
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autograph.clock import fixed_clock
from autograph.dr.buckets import members
from autograph.dr.buckets.archive import (
    MANIFEST_MEMBER,
    SUMS_MEMBER,
    ArchiveWriter,
    ObjectInfo,
    write_archive,
)
from autograph.dr.buckets.archive_read import iter_archive, read_manifest, verify_archive
from autograph.errors import IntegrityError, InvalidInput, NotFound, OperationFailed

CLOCK = fixed_clock(datetime(2025, 3, 1, 12, 0, tzinfo=UTC))
ODD_KEYS = [
    "../../etc/passwd",
    "/abs",
    "/",
    "a" * 1000,
    "deep/" * 200 + "leaf.txt",
    "café/图表/ダイアグラム.json",
    "ctl\x00\x01\x1b[31m\n\r\t.txt",
    "bidi\u202eexe.txt",
    "zero\u200bwidth",
    "Report.PDF",
    "report.pdf",
    "a?b",
    "a*b",
    "a_b",
    "x",
    "x/child",
    "folder/",
    "folder/file.png",
    "./dot",
    "dots/../up",
    "double//slash",
    "back\\slash",
    "sp ace & (parens).json",
    "e\u0301",
    "\u00e9",
]


def info(key: str, data: bytes, **extra: object) -> ObjectInfo:
    fields: dict[str, object] = {
        "etag": hashlib.md5(data).hexdigest(),
        "content_type": "application/json",
        "metadata": {"owner": "ana", "note": "ünïcode"},
        "last_modified": "2025-02-03T04:05:06+00:00",
    }
    fields.update(extra)
    return ObjectInfo(key=key, size=len(data), **fields)  # type: ignore[arg-type]


def payload(index: int) -> bytes:
    rnd = random.Random(index)
    if index % 3 == 0:
        return json.dumps({"i": index, "nodes": list(range(index * 40))}).encode()
    if index % 3 == 1:
        return rnd.randbytes(rnd.randrange(0, 5000))
    return b""


def pieces(data: bytes, size: int = 700) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield b""
        yield data[start : start + size]


def build(path: Path, objects: dict[str, bytes]) -> list[str]:
    with path.open("wb") as out:
        result = write_archive(
            out, [(info(k, v), pieces(v)) for k, v in objects.items()], clock=CLOCK
        )
    return [r.member for r in result.records]


@pytest.fixture
def odd(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    objects = {key: payload(i) for i, key in enumerate(ODD_KEYS)}
    path = tmp_path / "odd.tar.gz"
    build(path, objects)
    return path, objects


def test_odd_keys_round_trip_with_metadata(odd: tuple[Path, dict[str, bytes]]) -> None:
    path, objects = odd
    seen: dict[str, bytes] = {}
    with path.open("rb") as source:
        for record, stream in iter_archive(source):
            assert record.content_type == "application/json"
            assert record.metadata == {"owner": "ana", "note": "ünïcode"}
            assert record.etag == hashlib.md5(objects[record.key]).hexdigest()
            seen[record.key] = stream.read()
    assert seen == objects
    assert list(seen) == sorted(objects)


def test_member_names_are_unique_safe_and_case_distinct(odd: tuple[Path, dict[str, bytes]]) -> None:
    with odd[0].open("rb") as source:
        names = [r.member for r in read_manifest(source)]
    folded = [n.casefold() for n in names]
    assert len(set(folded)) == len(names)
    for name in names:
        assert name.startswith(("objects/", "renamed/"))
        assert ".." not in name.split("/") and "" not in name.split("/")
        assert all(ch.isprintable() for ch in name)
    files = set(folded)
    assert not any(f.rsplit("/", 1)[0] in files for f in folded)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("diagrams/2025/plan.json", "objects/diagrams/2025/plan.json"),
        ("café/图.png", "objects/café/图.png"),
        ("ctl\x00\n.txt", "objects/ctl__.txt"),
        ("bidi\u202eexe", "objects/bidi_exe"),
        ("back\\slash", "objects/back_slash"),
    ],
)
def test_member_name_keeps_readable_keys(key: str, expected: str) -> None:
    assert members.member_name_for(key, 7) == expected


@pytest.mark.parametrize(
    "key", ["../../etc/passwd", "/abs", "a" * 1000, "folder/", "a//b", "./x", "x/..", "."]
)
def test_member_name_falls_back_for_unsafe_keys(key: str) -> None:
    name = members.member_name_for(key, 42)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    assert name.startswith(f"renamed/000042-{digest}")
    assert len(name) < 100 and ".." not in name.split("/")


def test_member_names_resolve_collisions_in_order() -> None:
    namer = members.MemberNames()
    assigned = [namer.assign(key, i) for i, key in enumerate(["A", "a", "a?", "a*", "A/b", "b"])]
    assert assigned[0] == "objects/A"
    assert assigned[1].startswith("renamed/000001-")  # same name on a case-insensitive disk
    assert assigned[2] == "objects/a_"
    assert assigned[3].startswith("renamed/000003-")  # sanitizes to a taken name
    assert assigned[4].startswith("renamed/000004-")  # would need "A" to be a folder
    assert assigned[5] == "objects/b"


def test_real_tar_extracts_only_inside_its_target(
    odd: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, objects = odd
    jail = tmp_path / "jail"
    target = jail / "a" / "b" / "target"
    target.mkdir(parents=True)
    subprocess.run(["tar", "-xzf", str(path), "-C", str(target)], check=True)
    outside = [p for p in jail.rglob("*") if target not in (p, *p.parents)]
    assert outside == [jail / "a", jail / "a" / "b"]
    with path.open("rb") as source:
        records = read_manifest(source)
    for record in records:
        assert (target / record.member).read_bytes() == objects[record.key]
    extracted = [p for p in target.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(extracted) == len(objects) + 2
    checked = subprocess.run(["sha256sum", "-c", "--quiet", SUMS_MEMBER], cwd=target)
    assert checked.returncode == 0


def test_python_tarfile_reads_it_in_both_modes(odd: tuple[Path, dict[str, bytes]]) -> None:
    path, objects = odd
    with tarfile.open(path) as tar:
        names = tar.getnames()
        assert names[:2] == [MANIFEST_MEMBER, SUMS_MEMBER]
        manifest = tar.extractfile(MANIFEST_MEMBER).read().decode()  # type: ignore[union-attr]
        lines = [json.loads(line) for line in manifest.splitlines()]
        for line in lines:
            assert tar.extractfile(line["member"]).read() == objects[line["key"]]  # type: ignore[union-attr]
        assert {line["key"] for line in lines} == set(objects)
        assert all(len(line["sha256"]) == 64 for line in lines)
    with path.open("rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as stream:
        assert [m.name for m in stream][2:] == [line["member"] for line in lines]


def test_data_filter_extraction_accepts_every_member(
    odd: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    with tarfile.open(odd[0]) as tar:
        tar.extractall(tmp_path / "out", filter="data")
    assert (tmp_path / "out" / MANIFEST_MEMBER).is_file()


def test_gzip_and_result_describe_the_bytes_written(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    objects = {f"k{i}": payload(i) for i in range(30)}
    result = write_archive(buffer, [(info(k, v), [v]) for k, v in objects.items()], clock=CLOCK)
    data = buffer.getvalue()
    assert result.archive_size == len(data)
    assert result.archive_sha256 == hashlib.sha256(data).hexdigest()
    assert result.objects == 30 and result.bytes_in == sum(map(len, objects.values()))
    (tmp_path / "a.tar.gz").write_bytes(data)
    assert subprocess.run(["gzip", "-t", str(tmp_path / "a.tar.gz")]).returncode == 0
    verified = verify_archive(tmp_path / "a.tar.gz", expected_sha256=result.archive_sha256)
    assert (verified.objects, verified.total_bytes) == (30, result.bytes_in)
    assert verified.archive_sha256 == result.archive_sha256


def test_empty_objects_and_an_empty_archive(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    write_archive(buffer, [(info("empty", b""), []), (info("also", b""), [b""])], clock=CLOCK)
    buffer.seek(0)
    assert [(r.key, s.read()) for r, s in iter_archive(buffer)] == [("also", b""), ("empty", b"")]
    nothing = io.BytesIO()
    write_archive(nothing, [], clock=CLOCK)
    nothing.seek(0)
    assert verify_archive(nothing).objects == 0


def test_add_order_and_threads_do_not_change_the_bytes() -> None:
    objects = {f"dir/{i:03d}": payload(i) for i in range(60)}
    sequential = io.BytesIO()
    write_archive(sequential, [(info(k, v), pieces(v)) for k, v in objects.items()], clock=CLOCK)
    shuffled = list(objects.items())
    random.Random(3).shuffle(shuffled)
    concurrent = io.BytesIO()
    with ArchiveWriter(concurrent, clock=CLOCK) as writer:
        threads = [
            threading.Thread(
                target=lambda part: [writer.add(info(k, v), pieces(v)) for k, v in part],
                args=(shuffled[n::4],),
            )
            for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        writer.close()
    assert concurrent.getvalue() == sequential.getvalue()


def test_short_object_is_refused_and_can_be_added_again() -> None:
    buffer = io.BytesIO()
    with ArchiveWriter(buffer, clock=CLOCK) as writer:
        with pytest.raises(IntegrityError, match="expected 10 bytes, read 4"):
            writer.add(ObjectInfo(key="k", size=10), [b"abcd"])
        assert (
            writer.add(ObjectInfo(key="k", size=4), [b"abcd"])
            == hashlib.sha256(b"abcd").hexdigest()
        )
        with pytest.raises(InvalidInput, match="added twice"):
            writer.add(ObjectInfo(key="k", size=4), [b"abcd"])
        writer.close()
    buffer.seek(0)
    assert [(r.key, s.read()) for r, s in iter_archive(buffer)] == [("k", b"abcd")]


def test_tiny_chunks_and_unencodable_keys() -> None:
    data = random.Random(1).randbytes(300_000) + b"{}" * 400_000
    buffer = io.BytesIO()
    with ArchiveWriter(buffer, clock=CLOCK) as writer:
        writer.add(info("tiny", data), pieces(data, 37))
        with pytest.raises(InvalidInput, match="cannot be recorded"):
            writer.add(ObjectInfo.model_construct(key="bad\udcff", size=0), [])
        writer.close()
    buffer.seek(0)
    assert [s.read() for _, s in iter_archive(buffer)] == [data]


def test_large_object_streams_with_flat_memory(tmp_path: Path) -> None:
    size = 50 << 20
    path = tmp_path / "big.tar.gz"

    def chunks() -> Iterator[bytes]:
        for index in range(size >> 20):
            yield random.Random(index).randbytes(1 << 20)

    tracemalloc.start()
    try:
        with path.open("wb") as out:
            write_archive(out, [(ObjectInfo(key="big", size=size), chunks())], spool_dir=tmp_path)
        _, write_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = verify_archive(path)
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.total_bytes == size
    assert write_peak < size // 8, write_peak
    assert read_peak < size // 8, read_peak


def test_unread_streams_are_skipped(odd: tuple[Path, dict[str, bytes]]) -> None:
    path, objects = odd
    with path.open("rb") as source:
        tail = {
            r.key: (s.read() if i % 2 else s.read(3))
            for i, (r, s) in enumerate(iter_archive(source))
        }
    assert all(tail[k] == objects[k] or tail[k] == objects[k][:3] for k in objects)


@pytest.fixture
def small(tmp_path: Path) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    objects = {"json": json.dumps(list(range(300))).encode(), "rand": random.randbytes(900)}
    result = write_archive(buffer, [(info(k, v), [v]) for k, v in objects.items()], clock=CLOCK)
    return buffer.getvalue(), result.archive_sha256


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -8, -1])
def test_truncated_archive_fails_verification(small: tuple[bytes, str], keep: float) -> None:
    data, _ = small
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)
    with pytest.raises(IntegrityError):
        verify_archive(io.BytesIO(data[:cut]))


def test_every_flipped_byte_fails_verification(small: tuple[bytes, str]) -> None:
    data, digest = small
    undetected = []
    for position in range(len(data)):
        broken = bytearray(data)
        broken[position] ^= 0xFF
        with pytest.raises(IntegrityError):
            verify_archive(io.BytesIO(bytes(broken)), expected_sha256=digest)
        try:
            verify_archive(io.BytesIO(bytes(broken)))
        except IntegrityError:
            continue
        undetected.append(position)
    # Only the gzip header's mtime, flags and OS bytes carry nothing the content checks see.
    assert set(undetected) <= set(range(4, 10))


def test_not_an_archive_and_missing_file(tmp_path: Path) -> None:
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w:gz") as tar:
        entry = tarfile.TarInfo("x")
        tar.addfile(entry, io.BytesIO(b""))
    with pytest.raises(IntegrityError, match="not a bucket archive"):
        verify_archive(io.BytesIO(plain.getvalue()))
    with pytest.raises(IntegrityError):
        verify_archive(io.BytesIO(os.urandom(4096)))
    with pytest.raises(NotFound):
        verify_archive(tmp_path / "missing.tar.gz")


def test_huge_sizes_and_long_names_use_pax_headers() -> None:
    header = members.tar_header("objects/" + "é" * 300, 9 << 30, 0)
    assert len(header) % 512 == 0 and header[156:157] == b"x"
    with tarfile.open(fileobj=io.BytesIO(header), mode="r|") as tar:
        info = tar.next()
    assert info is not None and info.isreg()
    assert (info.name, info.size) == ("objects/" + "é" * 300, 9 << 30)


def test_leaving_the_block_on_an_error_closes_the_writer() -> None:
    with pytest.raises(RuntimeError), ArchiveWriter(io.BytesIO()) as writer:
        writer.add(ObjectInfo(key="k", size=1), [b"x"])
        raise RuntimeError("fetch failed")
    with pytest.raises(OperationFailed, match="closed"):
        writer.add(ObjectInfo(key="j", size=1), [b"x"])
    with pytest.raises(OperationFailed, match="closed"):
        writer.close()
