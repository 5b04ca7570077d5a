"""What an S3 ETag proves about the bytes stored.

On most servers a single PUT's ETag is the MD5 of the body (32 hex digits) and a multipart
object's is the MD5 of its parts' binary MD5s followed by ``-N`` (N parts). Under SSE-KMS and
SSE-C (and on some servers) the ETag is opaque even when it has that shape; the answer then says
so with ``x-amz-server-side-encryption: aws:kms`` (or ``aws:kms:dsse``) or an SSE-C algorithm
header. An ETag is compared with an expected MD5 only when it has the MD5 shape and the answer
does not name such encryption: a mismatch there is real damage, anything else proves nothing
(the per-request Content-MD5, which the server checks on every PUT, still guards the bytes).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

_PLAIN = re.compile(r"[0-9a-f]{32}")
_MULTIPART = re.compile(r"[0-9a-f]{32}-[1-9][0-9]{0,4}")
_OPAQUE_SSE = ("aws:kms", "aws:kms:dsse")
SSE_HEADER = "x-amz-server-side-encryption"
SSE_C_HEADER = "x-amz-server-side-encryption-customer-algorithm"


def opaque_encryption(headers: Mapping[str, str]) -> bool:
    """True when a response's headers (names lower-cased) say the object is under SSE-KMS or
    SSE-C, whose ETags are not MD5s."""
    return headers.get(SSE_HEADER, "").lower() in _OPAQUE_SSE or bool(headers.get(SSE_C_HEADER))


def is_md5_shaped(etag: str) -> bool:
    """A plain MD5 (one PUT) or an MD5-of-MD5s with a part count (multipart)."""
    etag = etag.strip('"').lower()
    return bool(_PLAIN.fullmatch(etag) or _MULTIPART.fullmatch(etag))


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """The usual ETag of a multipart object whose parts have these binary MD5s."""
    digests = list(part_md5s)
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


def multipart_etag_from_parts(part_etags: list[str]) -> str | None:
    """The expected multipart ETag from the parts' ETags, or None when any of them is not a
    plain MD5 (opaque ETags: nothing to derive)."""
    plain = [e.strip('"').lower() for e in part_etags]
    if not plain or not all(_PLAIN.fullmatch(e) for e in plain):
        return None
    return multipart_etag(bytes.fromhex(e) for e in plain)


def contradicts(etag: str, expected: str, headers: Mapping[str, str]) -> bool:
    """True only when ``etag`` is provably not the ``expected`` MD5-based ETag: both have the
    same MD5 shape, the answer names no SSE-KMS/SSE-C, and they differ."""
    etag, expected = etag.strip('"').lower(), expected.strip('"').lower()
    if not etag or opaque_encryption(headers):
        return False
    if not (is_md5_shaped(etag) and is_md5_shaped(expected)):
        return False
    if ("-" in etag) != ("-" in expected):
        return False
    return etag != expected
