"""Tar members of a bucket archive: safe names from S3 keys, POSIX headers, and reading them.

An S3 key may hold ``..``, a leading ``/``, control bytes, odd Unicode or a thousand characters.
The real key always travels in ``manifest.jsonl``; the member name only has to be safe to extract
with a plain ``tar -xzf``, unique, and readable where possible:

- ``objects/<key>`` when every character is printable (unsafe characters become ``_``), no path
  segment is empty, ``.`` or ``..``, segments fit in 255 bytes and the name is free;
- ``renamed/<index>-<sha256(key)[:16]>[-<hint>]`` otherwise (``hint`` is an ASCII rendering of the
  key's last segment), unique through the index.

"Free" is checked case- and normalisation-insensitively, and a name may neither sit under another
member's file nor be a folder of an earlier one, so extraction never overwrites, even on macOS
or Windows. Names never start with ``/`` and never hold ``..``; members are plain files only.

Headers are written by :meth:`tarfile.TarInfo.tobuf` (pax format) and read back by the standard
:mod:`tarfile` stream reader: no hand-written parser of untrusted input. What is ours is the layer
below it: :class:`TarReader` gunzips with ISA-L (members chained), hashes the raw bytes on the
way and refuses a truncated gzip stream; :class:`MemberStream` streams one member's bytes and
checks their sha256.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import tarfile
import unicodedata
from types import ModuleType
from typing import IO, BinaryIO

from autograph.errors import IntegrityError

BLOCK = 512
RECORD = 20 * BLOCK
OBJECTS_DIR = "objects/"
RENAMED_DIR = "renamed/"
MAX_SEGMENT_BYTES = 255
MAX_NAME_BYTES = 4000

READ_CHUNK = 1 << 20
CODEC: ModuleType = importlib.import_module("isal.isal_zlib")  # ISA-L: zlib's API, faster

_ASCII_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'()+,-.;=@[]^_{}~"
)
_HINT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe_char(ch: str) -> bool:
    if ch.isascii():
        return ch in _ASCII_SAFE
    return unicodedata.category(ch)[0] in "LMNPS"


def member_name_for(key: str, index: int) -> str:
    """Return the preferred member name for ``key``: readable if safe, else the fallback name.

    Stateless: uniqueness across an archive is :class:`MemberNames`' job.
    """
    text = "".join(ch if ch == "/" or _safe_char(ch) else "_" for ch in key)
    segments = text.split("/")
    if any(s in ("", ".", "..") or len(s.encode()) > MAX_SEGMENT_BYTES for s in segments):
        return fallback_member_name(key, index)
    name = OBJECTS_DIR + text
    if len(name.encode()) > MAX_NAME_BYTES:
        return fallback_member_name(key, index)
    return name


def fallback_member_name(key: str, index: int) -> str:
    """Return ``renamed/<index>-<hash>[-<hint>]``: always safe, unique through ``index``."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    hint = _HINT_UNSAFE.sub("_", key.rsplit("/", 1)[-1]).lstrip("._-")[-40:]
    return f"{RENAMED_DIR}{index:06d}-{digest}" + (f"-{hint}" if hint else "")


def _fold(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


class MemberNames:
    """Assigns unique, extraction-safe member names to keys, in archive order."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()

    def assign(self, key: str, index: int) -> str:
        """Return the member name for the ``index``-th object, falling back when taken."""
        name = member_name_for(key, index)
        if name.startswith(OBJECTS_DIR) and not self._is_free(name):
            name = fallback_member_name(key, index)
        self._take(name)
        return name

    def _is_free(self, name: str) -> bool:
        folded = _fold(name)
        if folded in self._files or folded in self._dirs:
            return False
        parts = folded.split("/")
        return not any("/".join(parts[:i]) in self._files for i in range(1, len(parts)))

    def _take(self, name: str) -> None:
        folded = _fold(name)
        self._files.add(folded)
        parts = folded.split("/")
        self._dirs.update("/".join(parts[:i]) for i in range(1, len(parts)))


# --- headers -------------------------------------------------------------------------------


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """Return the header block(s) of a regular file (mode 0644): ustar, preceded by a pax
    header when the name or the size does not fit (tarfile decides)."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = max(mtime, 0)
    info.mode = 0o644
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def padding(size: int) -> bytes:
    """Return the zero bytes that round ``size`` up to a whole tar block."""
    return b"\0" * (-size % BLOCK)


# --- reading -------------------------------------------------------------------------------


class TarReader(io.RawIOBase):
    """Archive bytes in, tar members out: gunzips (members chained), hashes and counts the
    input, and hands the tar stream to :mod:`tarfile`'s stream reader.

    Raises IntegrityError for a truncated or corrupt gzip stream (checked to its trailer) and for
    a tar stream that :mod:`tarfile` cannot read.
    """

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._engine = CODEC.decompressobj(31)
        self._feed = b""
        self._out = b""
        self._pos = 0
        self.digest = hashlib.sha256()
        self.size = 0
        self._tar: tarfile.TarFile | None = None
        self._member: IO[bytes] | None = None

    def _read_raw(self) -> bytes:
        data = self._raw.read(READ_CHUNK)
        self.digest.update(data)
        self.size += len(data)
        return data

    def _refill(self) -> bytes:
        while True:
            if self._engine.eof:
                rest = self._engine.unused_data or self._read_raw()
                if not rest:
                    return b""
                self._engine, self._feed = CODEC.decompressobj(31), rest
            elif not self._feed:
                self._feed = self._read_raw()
                if not self._feed:
                    raise IntegrityError("the archive is truncated (its gzip stream ends early)")
            try:
                out: bytes = self._engine.decompress(self._feed, READ_CHUNK)
            except CODEC.error as exc:
                raise IntegrityError(f"the archive is corrupt (gzip: {exc})") from None
            self._feed = self._engine.unconsumed_tail
            if out:
                return out

    def readable(self) -> bool:
        return True

    def read(self, limit: int | None = -1) -> bytes:
        """Return 1 to ``limit`` bytes of tar, or b"" at the end of the gzip stream."""
        if limit is None or limit < 0:
            limit = READ_CHUNK
        if self._pos >= len(self._out):
            self._out, self._pos = self._refill(), 0
        data = self._out[self._pos : self._pos + limit]
        self._pos += len(data)
        return data

    def next_member(self) -> tuple[str, int] | None:
        """Return the next file member's (name, size), or None at the end of the archive.

        Raises IntegrityError for anything but a regular file, or a tar stream that is not one.
        """
        try:
            if self._tar is None:
                # kept open across calls, closed with the stream it reads: no context manager
                self._tar = tarfile.open(  # noqa: SIM115
                    fileobj=self, mode="r|", bufsize=16 * BLOCK)
            info = self._tar.next()
        except tarfile.TarError as exc:
            raise IntegrityError(f"the archive is corrupt (tar: {exc})") from None
        # the stream reader would keep every header: dropping them keeps memory flat
        self._tar.members.clear()  # type: ignore[attr-defined]  # (not in the stubs)
        if info is None:
            self._member = None
            return None
        if not info.isreg():
            raise IntegrityError(f"unexpected tar entry {info.name!r}")
        self._member = self._tar.extractfile(info)
        return info.name, info.size

    def read_member(self, limit: int) -> bytes:
        """Return up to ``limit`` bytes of the current member (b"" at its end).

        Raises IntegrityError if the archive ends inside the member.
        """
        if self._member is None:
            return b""
        try:
            return self._member.read(limit)
        except tarfile.TarError as exc:
            raise IntegrityError(f"the archive is truncated (tar: {exc})") from None

    def read_exact(self, size: int) -> bytes:
        """Return exactly ``size`` bytes of the current member; raises IntegrityError if the
        archive ends first."""
        parts: list[bytes] = []
        while size > 0:
            data = self.read_member(min(size, READ_CHUNK))
            if not data:
                raise IntegrityError("the archive is truncated (the tar stream ends early)")
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def finish(self) -> None:
        """Read past the end-of-archive blocks to the end of the gzip stream (checking it)."""
        while data := self.read(READ_CHUNK):
            if data.count(0) != len(data):
                raise IntegrityError("the archive holds data after its end-of-archive blocks")


class MemberStream(io.RawIOBase):
    """The bytes of the current member (``size`` long); checks their sha256 once fully read.

    ``read()`` raises IntegrityError when the last byte arrives with the wrong digest; ``label``
    names the member in that message. What is left unread is skipped by the next member's read.
    """

    def __init__(self, tar: TarReader, size: int, sha256: str, label: str) -> None:
        super().__init__()
        self.size = size
        self.label = label
        self._sha256 = sha256
        self._tar = tar
        self._left = size
        self._digest = hashlib.sha256()
        if not self._left:
            self._end()

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self._left:
            return b""
        data = self._tar.read_member(min(size, self._left, READ_CHUNK))
        if not data:
            raise IntegrityError("the archive is truncated (the tar stream ends early)")
        self._digest.update(data)
        self._left -= len(data)
        if not self._left:
            self._end()
        return data

    def readall(self) -> bytes:
        return b"".join(iter(lambda: self.read(READ_CHUNK), b""))

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def skip(self) -> None:
        """Discard what was not read (the tar reader moves past it), without checking it."""
        self._left = 0

    def _end(self) -> None:
        if self._digest.hexdigest() != self._sha256:
            raise IntegrityError(f"{self.label}: sha256 does not match the manifest")
