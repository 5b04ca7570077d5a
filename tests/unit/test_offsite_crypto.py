"""The off-site encryption format: round trips, sizes, and every tampering detected."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from autograph.dr.storage.crypto import (
    HEADER_LEN,
    TAG,
    DecryptingReader,
    Encryptor,
    ciphertext_size,
    load_or_create_key,
    new_key,
    parse_key,
    plaintext_size,
)
from autograph.errors import ConfigError, IntegrityError, KeyUnavailable

CHUNK = 1024


def _encrypt(data: bytes, key=None, chunk: int = CHUNK) -> bytes:  # type: ignore[no-untyped-def]
    enc = Encryptor(key or KEY, chunk)
    out = bytearray()
    for start in range(0, len(data), 700):  # odd-sized writes
        out += enc.update(data[start:start + 700])
    return bytes(out + enc.finish())


def _decrypt(blob: bytes, keys=None) -> bytes:  # type: ignore[no-untyped-def]
    reader = DecryptingReader(io.BytesIO(blob), keys or {KEY.key_id: KEY}, "test-object")
    return reader.read()


KEY = new_key()


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17])
def test_round_trip_and_sizes(size: int) -> None:
    data = os.urandom(size)
    blob = _encrypt(data)
    assert blob[HEADER_LEN:HEADER_LEN + 64] != data[:64] or size == 0
    assert len(blob) == ciphertext_size(size, CHUNK)
    assert plaintext_size(len(blob), CHUNK) == size
    assert _decrypt(blob) == data


def test_reads_in_small_pieces_give_the_same_bytes() -> None:
    data = os.urandom(5 * CHUNK + 3)
    reader = DecryptingReader(io.BytesIO(_encrypt(data)), {KEY.key_id: KEY}, "x")
    pieces = bytearray()
    while piece := reader.read(333):
        pieces += piece
    assert bytes(pieces) == data


@pytest.mark.parametrize("where", [0, 10, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + CHUNK + 5, -1])
def test_one_flipped_byte_anywhere_is_detected(where: int) -> None:
    blob = bytearray(_encrypt(os.urandom(3 * CHUNK)))
    blob[where] ^= 0x01
    with pytest.raises((IntegrityError, KeyUnavailable)):
        _decrypt(bytes(blob))


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    blob = _encrypt(os.urandom(3 * CHUNK + 10))
    cut = HEADER_LEN + 2 * (CHUNK + TAG)  # two whole chunks, the final one dropped
    with pytest.raises(IntegrityError, match="failed authentication"):
        _decrypt(blob[:cut])
    with pytest.raises(IntegrityError):
        _decrypt(blob[:HEADER_LEN])


def test_reordered_chunks_are_detected() -> None:
    blob = _encrypt(os.urandom(3 * CHUNK + 10))
    step = CHUNK + TAG
    first = blob[HEADER_LEN:HEADER_LEN + step]
    second = blob[HEADER_LEN + step:HEADER_LEN + 2 * step]
    swapped = blob[:HEADER_LEN] + second + first + blob[HEADER_LEN + 2 * step:]
    with pytest.raises(IntegrityError, match="chunk 0"):
        _decrypt(swapped)


def test_a_missing_key_is_named_by_its_id() -> None:
    other = new_key()
    with pytest.raises(KeyUnavailable, match=KEY.key_id):
        _decrypt(_encrypt(b"secret"), {other.key_id: other})


def test_a_key_file_is_created_once_0600_and_parsed_back(tmp_path: Path) -> None:
    first = load_or_create_key(tmp_path / "secrets")
    path = tmp_path / "secrets" / "offsite-key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key(tmp_path / "secrets") == first
    assert parse_key(first.export()) == first
    assert first.key.hex() not in repr(first) and "=" not in repr(first)


@pytest.mark.parametrize("text", ["", "kabc:notbase64!!", "k123:" + "QUFB", "kdeadbeefdeadbee:"
                                  + "A" * 43 + "="])
def test_malformed_keys_are_refused_without_showing_them(text: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_key(text)
    assert "A" * 43 not in info.value.message
