"""One contract for every BackupStore backend (local folder, S3 bucket), on real servers."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.dr.storage import BackupStore
from autograph.dr.storage.crypto import new_key
from autograph.dr.storage.local import LocalStore
from autograph.dr.storage.offsite import OffsiteStore
from autograph.dr.storage.s3 import S3Store
from autograph.errors import DependencyDown, IntegrityError, NotFound
from autograph.s3.boto import backup_client, make_client
from autograph.stack.lifecycle import Stack
from stackutil import free_port_block

PART = 5 * 1024 * 1024  # the smallest part S3 accepts


@pytest.fixture(params=["local", "s3", "offsite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BackupStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "tier")
        return
    if request.param == "offsite":  # a second S3 server, everything encrypted
        server = request.getfixturevalue("offsite_server")
        inner = S3Store(server.client(), "autograph-offsite", f"contract-{secrets.token_hex(4)}/",
                        part_size=PART)
        yield OffsiteStore(inner, new_key())
        for item in inner.list():
            inner.delete(item.key)
        return
    stack: Stack = request.getfixturevalue("infra_stack")
    client = backup_client(stack.settings, stack.creds)
    prefix = f"contract-{secrets.token_hex(4)}/"
    s3 = S3Store(client, stack.settings.backup_bucket_database, prefix, part_size=PART)
    yield s3
    for item in s3.list():
        s3.delete(item.key)


def _read(store: BackupStore, key: str) -> bytes:
    with store.open(key) as stream:
        return stream.read()


def test_put_then_open_returns_the_same_bytes_and_their_sha256(store: BackupStore) -> None:
    data = os.urandom(300_000)
    stored = store.put("a.dump", io.BytesIO(data))
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert _read(store, "a.dump") == data
    assert store.stat("a.dump").size == len(data)


def test_put_from_a_path(store: BackupStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"x" * 1000)
    store.put("p.dump", source)
    assert _read(store, "p.dump") == b"x" * 1000


def test_multipart_sized_upload_round_trips(store: BackupStore) -> None:
    data = os.urandom(2 * PART + 12345)
    with store.writer("big.dump") as sink:
        for start in range(0, len(data), 1 << 20):
            sink.write(data[start:start + (1 << 20)])
    assert sink.hexdigest() == hashlib.sha256(data).hexdigest()
    assert hashlib.sha256(_read(store, "big.dump")).hexdigest() == hashlib.sha256(data).hexdigest()


def test_writer_interrupted_leaves_nothing_under_the_key(store: BackupStore) -> None:
    with pytest.raises(RuntimeError), store.writer("cut.dump") as sink:
        sink.write(os.urandom(PART + 10))
        raise RuntimeError("producer died")
    with pytest.raises(NotFound):
        store.stat("cut.dump")
    assert [o.key for o in store.list()] == []


def test_wrong_expected_checksum_stores_nothing(store: BackupStore) -> None:
    with pytest.raises(IntegrityError):
        store.put("bad.dump", io.BytesIO(b"payload"), expected_sha256="0" * 64)
    assert [o.key for o in store.list()] == []


def test_missing_keys_raise_not_found_and_delete_is_idempotent(store: BackupStore) -> None:
    with pytest.raises(NotFound):
        store.stat("nope.dump")
    with pytest.raises(NotFound), store.open("nope.dump"):
        pass
    store.delete("nope.dump")


def test_list_is_sorted_and_filters_by_prefix(store: BackupStore) -> None:
    for key in ("b.dump", "a.dump", "a.manifest.json", "c.tar.gz"):
        store.put(key, io.BytesIO(key.encode()))
    assert [o.key for o in store.list()] == ["a.dump", "a.manifest.json", "b.dump", "c.tar.gz"]
    assert [o.key for o in store.list("a.")] == ["a.dump", "a.manifest.json"]
    store.delete("a.dump")
    assert "a.dump" not in [o.key for o in store.list()]


def test_put_replaces_an_existing_key(store: BackupStore) -> None:
    store.put("k.manifest.json", io.BytesIO(b"one"))
    store.put("k.manifest.json", io.BytesIO(b"two"))
    assert _read(store, "k.manifest.json") == b"two"


def test_keys_cannot_be_paths(store: BackupStore) -> None:
    for key in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(Exception, match="invalid storage key"):
            store.stat(key)


def test_unreachable_s3_server_raises_dependency_down() -> None:
    client = make_client(f"http://127.0.0.1:{free_port_block()}", "k", "s", retries=1,
                         connect_timeout=1.0)
    dead = S3Store(client, "autograph-backups", "database/")
    with pytest.raises(DependencyDown):
        dead.list()
    with pytest.raises(DependencyDown):
        dead.put("x.dump", io.BytesIO(b"data"))
