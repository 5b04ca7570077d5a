"""Streaming authenticated encryption for everything sent off-site (AES-256-GCM, chunked).

Format ``autograph-enc/1`` (the STREAM construction over the ``cryptography`` library's AESGCM;
no primitive of our own)::

    header = MAGIC(8) | key_id(16 ascii) | chunk_size(4, big-endian) | salt(32) | prefix(7)
    chunk i = AESGCM(file_key).encrypt(nonce = prefix | i (4, big-endian) | final (1), data,
                                       associated_data = header)

``file_key = HKDF-SHA256(master key, salt, info="autograph-enc/1")``: a fresh key per file, so
nonces never repeat across files. The chunk index and the *final* flag are in the nonce and the
header (key id, chunk size, salt) is authenticated with every chunk, so a reordered, dropped,
truncated or extended file fails to decrypt, as does any flipped byte. Every chunk is authenticated
before its plaintext is released, and the final chunk's flag is checked before EOF is reported.

The key is 32 random bytes with an id (``k`` + 15 hex of its HMAC fingerprint): the id goes in
every header and in the off-site manifests, so a missing or wrong key is reported by id.
Stored in ``HOME/secrets/offsite-key`` (0600) as ``KEY_ID:BASE64``, created at first use, or
given as ``AUTOGRAPH_OFFSITE_KEY`` in the same form. Losing it makes the off-site copies
unreadable: it belongs in the recovery kit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from autograph.errors import ConfigError, IntegrityError, KeyUnavailable

MAGIC = b"AGENC\x00\x01\n"
KEY_ID_LEN = 16
CHUNK_SIZE = 1 << 20
TAG = 16
_SALT = 32
_PREFIX = 7
HEADER_LEN = len(MAGIC) + KEY_ID_LEN + 4 + _SALT + _PREFIX
_INFO = b"autograph-enc/1"
KEY_FILE = "offsite-key"


@dataclass(frozen=True)
class EncryptionKey:
    """A 256-bit key and its public id. ``repr`` never shows the key."""

    key_id: str
    key: bytes

    def __repr__(self) -> str:
        return f"EncryptionKey({self.key_id})"

    def export(self) -> str:
        """``KEY_ID:BASE64``: the form of the key file, the setting and the recovery kit."""
        return f"{self.key_id}:{base64.b64encode(self.key).decode()}"


def key_id_of(key: bytes) -> str:
    """The id of a key: a fingerprint that reveals nothing about it."""
    return "k" + hmac.new(key, b"autograph key id", hashlib.sha256).hexdigest()[: KEY_ID_LEN - 1]


def new_key() -> EncryptionKey:
    """A fresh random key."""
    key = _random.token_bytes(32)
    return EncryptionKey(key_id_of(key), key)


def parse_key(text: str, where: str = "the off-site key") -> EncryptionKey:
    """Read ``KEY_ID:BASE64``. Raises ConfigError (never showing the key) when malformed."""
    key_id, _, encoded = text.strip().partition(":")
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ConfigError(f"{where} is malformed (expected KEY_ID:BASE64)") from None
    if len(key) != 32:
        raise ConfigError(f"{where} is malformed (expected 32 bytes of key)")
    if key_id_of(key) != key_id:
        raise ConfigError(f"{where} is damaged: its id {key_id[:16]!r} does not match the key")
    return EncryptionKey(key_id, key)


def load_or_create_key(secrets_dir: Path, configured: str | None = None) -> EncryptionKey:
    """The off-site key: ``configured`` (the setting) if given, else the key file, created
    (0600, exclusively) on first use. Raises ConfigError when either is malformed."""
    if configured:
        return parse_key(configured, "AUTOGRAPH_OFFSITE_KEY")
    path = secrets_dir / KEY_FILE
    if not path.exists():
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: read theirs
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(new_key().export() + "\n")
    return parse_key(path.read_text(), str(path))


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= 1 << 32:
        raise IntegrityError("file too large for one encrypted stream (2^32 chunks)")
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def _file_key(master: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(master)
    return AESGCM(derived)


def ciphertext_size(plain: int, chunk: int = CHUNK_SIZE) -> int:
    """Bytes stored for ``plain`` bytes of plaintext."""
    chunks = max(1, -(-plain // chunk))
    return HEADER_LEN + plain + TAG * chunks


def plaintext_size(stored: int, chunk: int = CHUNK_SIZE) -> int:
    """The plaintext size of a stored (encrypted) object of ``stored`` bytes (-1: not ours)."""
    body = stored - HEADER_LEN
    if body < TAG:
        return -1
    chunks = -(-body // (chunk + TAG))
    return body - TAG * chunks


class Encryptor:
    """Plaintext in (``update``), ciphertext out; ``finish`` seals the final chunk."""

    def __init__(self, key: EncryptionKey, chunk: int = CHUNK_SIZE) -> None:
        salt, self._prefix = _random.token_bytes(_SALT), _random.token_bytes(_PREFIX)
        self.header = (MAGIC + key.key_id.encode() + struct.pack(">I", chunk) + salt
                       + self._prefix)
        self._aead = _file_key(key.key, salt)
        self._chunk = chunk
        self._buffer = bytearray()
        self._index = 0
        self._started = False

    def _seal(self, data: bytes | memoryview, final: bool) -> bytes:
        sealed = self._aead.encrypt(_nonce(self._prefix, self._index, final), data, self.header)
        self._index += 1
        return sealed

    def update(self, data: bytes | bytearray | memoryview) -> bytes:
        """Ciphertext for whole chunks so far (the header first); the rest is held back.

        A chunk is sealed only once more data follows it (the last one waits for ``finish``);
        whole chunks of ``data`` are sealed in place, without copying them into the buffer.
        """
        out: list[bytes] = []
        if not self._started:
            out.append(self.header)
            self._started = True
        view = memoryview(data).cast("B")
        if self._buffer:
            room = self._chunk - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(view) == 0:
                return b"".join(out)
            out.append(self._seal(bytes(self._buffer), final=False))
            self._buffer = bytearray()
        while len(view) > self._chunk:
            out.append(self._seal(view[: self._chunk], final=False))
            view = view[self._chunk:]
        self._buffer += view
        return b"".join(out)

    def finish(self) -> bytes:
        """The final chunk (possibly empty plaintext): marks the end of the stream."""
        head = self.update(b"") if not self._started else b""
        final = self._seal(bytes(self._buffer), final=True)
        self._buffer = bytearray()
        return head + final


def read_header(stream: BinaryIO, where: str) -> tuple[bytes, str, int]:
    """Read and check the header; return (header, key id, chunk size). Raises IntegrityError."""
    header = _read_exact(stream, HEADER_LEN)
    if len(header) < HEADER_LEN or not header.startswith(MAGIC):
        raise IntegrityError(f"{where}: not an autograph-encrypted object (bad or short header)")
    key_id = header[len(MAGIC): len(MAGIC) + KEY_ID_LEN].decode("ascii", "replace")
    (chunk,) = struct.unpack(">I", header[len(MAGIC) + KEY_ID_LEN: len(MAGIC) + KEY_ID_LEN + 4])
    if not 1024 <= chunk <= 64 << 20:
        raise IntegrityError(f"{where}: implausible chunk size in the header")
    return header, key_id, chunk


class DecryptingReader:
    """A readable stream of the plaintext of an encrypted stream; every chunk authenticated.

    Raises KeyUnavailable (naming the key id) when the file was encrypted with a key we do not
    hold, IntegrityError when any byte was changed, chunks reordered, or the file truncated.
    """

    def __init__(self, source: BinaryIO, keys: dict[str, EncryptionKey], where: str) -> None:
        self._source = source
        self._where = where
        self.header, self.key_id, self._chunk = read_header(source, where)
        key = keys.get(self.key_id)
        if key is None:
            held = ", ".join(sorted(keys)) or "none"
            raise KeyUnavailable(f"{where} was encrypted with key {self.key_id}, which is not "
                                 f"available here (keys held: {held})")
        salt = self.header[len(MAGIC) + KEY_ID_LEN + 4: len(MAGIC) + KEY_ID_LEN + 4 + _SALT]
        self._prefix = self.header[-_PREFIX:]
        self._aead = _file_key(key.key, salt)
        self._index = 0
        self._pending = _read_exact(source, self._chunk + TAG)
        self._plain = b""
        self._done = False

    def _next_chunk(self) -> None:
        following = _read_exact(self._source, self._chunk + TAG)
        final = not following
        try:
            self._plain = self._aead.decrypt(_nonce(self._prefix, self._index, final),
                                             self._pending, self.header)
        except InvalidTag:
            raise IntegrityError(
                f"{self._where}: chunk {self._index} failed authentication with key "
                f"{self.key_id} (damaged, truncated or reordered)") from None
        self._index += 1
        self._pending = following
        self._done = final

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self._plain:
                if self._done:
                    break
                self._next_chunk()
                continue
            take = len(self._plain) if size < 0 else min(size - len(out), len(self._plain))
            out += self._plain[:take]
            self._plain = self._plain[take:]
        return bytes(out)

    def readable(self) -> bool:
        return True


def _read_exact(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes, fewer only at EOF (network streams return short reads)."""
    parts = bytearray()
    while len(parts) < size:
        data = stream.read(size - len(parts))
        if not data:
            break
        parts += data
    return bytes(parts)
