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

:class:`TarReader` reads members back from a gzip stream, hashing the raw bytes on the way;
:class:`MemberStream` streams one member's bytes and checks their sha256.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import re
import unicodedata
from dataclasses import dataclass
from types import ModuleType
from typing import BinaryIO

from autograph.errors import IntegrityError

BLOCK = 512
RECORD = 20 * BLOCK
OBJECTS_DIR = "objects/"
RENAMED_DIR = "renamed/"
MAX_SEGMENT_BYTES = 255
MAX_NAME_BYTES = 4000

READ_CHUNK = 1 << 20
MAX_PAX = 1 << 20
CODEC: ModuleType = importlib.import_module("isal.isal_zlib")  # ISA-L: zlib's API, faster

_ASCII_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$%&'()+,-.;=@[]^_{}~"
)
_HINT_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OCTAL_LIMIT = 8**11  # an 11-digit octal field holds sizes below 8 GiB


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


def _pax_record(keyword: str, value: str) -> bytes:
    body = f" {keyword}={value}\n".encode()
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def _split_ustar(name: str) -> tuple[str, str] | None:
    """Split an ASCII name into (prefix, name) fields, or None when ustar cannot hold it."""
    if not name.isascii():
        return None
    if len(name) <= 100:
        return "", name
    cut = name.rfind("/", 0, 156)
    if cut <= 0 or len(name) - cut - 1 > 100:
        return None
    return name[:cut], name[cut + 1 :]


def _ustar_block(name: str, prefix: str, size: int, mtime: int, typeflag: bytes) -> bytes:
    block = bytearray(BLOCK)
    block[0:100] = name.encode().ljust(100, b"\0")
    block[100:108] = b"0000644\0"
    block[108:116] = b"0000000\0"
    block[116:124] = b"0000000\0"
    block[124:136] = b"%011o\0" % (size if size < _OCTAL_LIMIT else 0)
    block[136:148] = b"%011o\0" % min(max(mtime, 0), _OCTAL_LIMIT - 1)
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[257:265] = b"ustar\x0000"
    block[345:500] = prefix.encode().ljust(155, b"\0")
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def tar_header(name: str, size: int, mtime: int) -> bytes:
    """Return the header block(s) of a regular file: ustar, preceded by a pax header if needed."""
    split = _split_ustar(name)
    pax = b""
    if split is None:
        pax += _pax_record("path", name)
        ascii_tail = name.encode("ascii", "replace").decode()[-100:].lstrip("/") or "object"
        split = ("", ascii_tail)
    if size >= _OCTAL_LIMIT:
        pax += _pax_record("size", str(size))
    head = _ustar_block(split[1], split[0], size, mtime, b"0")
    if not pax:
        return head
    pad = b"\0" * (-len(pax) % BLOCK)
    pax_head = _ustar_block("PaxHeaders/" + split[1][-80:], "", len(pax), mtime, b"x")
    return pax_head + pax + pad + head


def padding(size: int) -> bytes:
    """Return the zero bytes that round ``size`` up to a whole tar block."""
    return b"\0" * (-size % BLOCK)


@dataclass(frozen=True, slots=True)
class Header:
    """A parsed header block: ``typeflag`` is ``b"0"`` for files, ``b"x"`` for pax records."""

    name: str
    size: int
    typeflag: bytes


def _number(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        return int.from_bytes(field, "big") & ~(0x80 << (8 * (len(field) - 1)))
    text = field.rstrip(b"\0 ").lstrip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise IntegrityError(f"corrupt tar header: bad number {field!r}") from None


def parse_header(block: bytes) -> Header | None:
    """Parse one 512-byte block; None for an end-of-archive (zero) block.

    Raises IntegrityError if the block's checksum does not match.
    """
    if block.count(0) == BLOCK:
        return None
    expected = _number(block[148:156])
    if sum(block) - sum(block[148:156]) + 8 * 32 != expected:
        raise IntegrityError("corrupt tar header: checksum mismatch")
    name = block[0:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0] if block[257:262] == b"ustar" else b""
    full = (prefix + b"/" + name) if prefix else name
    typeflag = block[156:157].replace(b"\0", b"0")
    return Header(full.decode("utf-8", "replace"), _number(block[124:136]), typeflag)


def parse_pax(data: bytes) -> dict[str, str]:
    """Parse pax extended-header records (``"<len> key=value\\n"``).

    Raises IntegrityError on a malformed record.
    """
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise IntegrityError("corrupt pax header") from None
        record = data[space + 1 : pos + length - 1]
        keyword, sep, value = record.partition(b"=")
        if not sep or length <= 0 or data[pos + length - 1 : pos + length] != b"\n":
            raise IntegrityError("corrupt pax header")
        records[keyword.decode()] = value.decode("utf-8", "replace")
        pos += length
    return records


# --- reading -------------------------------------------------------------------------------


class TarReader:
    """Archive bytes in, tar bytes out: gunzips (members chained), hashes and counts the input.

    Raises IntegrityError for a truncated or corrupt gzip stream (checked to its trailer).
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._engine = CODEC.decompressobj(31)
        self._feed = b""
        self._out = b""
        self._pos = 0
        self.digest = hashlib.sha256()
        self.size = 0

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
                out = self._engine.decompress(self._feed, READ_CHUNK)
            except CODEC.error as exc:
                raise IntegrityError(f"the archive is corrupt (gzip: {exc})") from None
            self._feed = self._engine.unconsumed_tail
            if out:
                return out

    def read(self, limit: int) -> bytes:
        """Return 1 to ``limit`` bytes of tar, or b"" at the end of the gzip stream."""
        if self._pos >= len(self._out):
            self._out, self._pos = self._refill(), 0
        data = self._out[self._pos : self._pos + limit]
        self._pos += len(data)
        return data

    def read_exact(self, size: int) -> bytes:
        """Return exactly ``size`` bytes; raises IntegrityError if the archive ends first."""
        parts: list[bytes] = []
        while size > 0:
            data = self.read(size)
            if not data:
                raise IntegrityError("the archive is truncated (the tar stream ends early)")
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def next_member(self) -> tuple[str, int] | None:
        """Return the next file member's (name, size), or None at the end-of-archive block."""
        pax: dict[str, str] = {}
        while True:
            header = parse_header(self.read_exact(BLOCK))
            if header is None:
                return None
            if header.typeflag == b"x" and header.size <= MAX_PAX:
                block = self.read_exact(header.size + len(padding(header.size)))
                pax = parse_pax(block[: header.size])
                continue
            if header.typeflag != b"0":
                raise IntegrityError(f"unexpected tar entry {header.name!r}")
            size = pax.get("size", str(header.size))
            if not size.isdigit():
                raise IntegrityError(f"corrupt pax header: size {size!r}")
            return pax.get("path", header.name), int(size)

    def finish(self) -> None:
        """Read past the end-of-archive blocks to the end of the gzip stream (checking it)."""
        while data := self.read(READ_CHUNK):
            if data.count(0) != len(data):
                raise IntegrityError("the archive holds data after its end-of-archive blocks")


class MemberStream(io.RawIOBase):
    """The bytes of the current member (``size`` long); checks their sha256 once fully read.

    ``read()`` raises IntegrityError when the last byte arrives with the wrong digest; ``label``
    names the member in that message.
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
        data = self._tar.read(min(size, self._left, READ_CHUNK))
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
        """Discard what was not read (with its padding), without checking the digest."""
        if not self._left:
            return
        while self._left:
            self._left -= len(self._tar.read_exact(min(self._left, READ_CHUNK)))
        self._tar.read_exact(len(padding(self.size)))

    def _end(self) -> None:
        self._tar.read_exact(len(padding(self.size)))
        if self._digest.hexdigest() != self._sha256:
            raise IntegrityError(f"{self.label}: sha256 does not match the manifest")
