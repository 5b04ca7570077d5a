"""A lean S3 client for bulk transfers: SigV4 over a pool of keep-alive HTTP/1.1 links.

boto3 spends milliseconds of CPU per request building, signing and parsing; on two cores that,
not the network, bounds a backup of thousands of small objects. This client does only what bulk
copying needs (list, get with ranges, put, multipart, delete, buckets), signs with a cached
SigV4 key, and is safe to share between threads. Errors become :mod:`autograph.errors`:
unreachable server → DependencyDown, missing key → :class:`ObjectMissing`, anything else
OperationFailed naming the operation and the S3 error code.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import ssl
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from urllib.parse import unquote_plus, urlsplit

from autograph.errors import DependencyDown, InvalidInput, OperationFailed
from autograph.s3.completion import completion_body, settle
from autograph.s3.http11 import Link
from autograph.s3.response import (
    META_PREFIX,
    ListedObject,
    ObjectHead,
    ObjectMissing,
    Response,
)
from autograph.s3.retry import Attempts
from autograph.s3.sigv4 import S3Endpoint, Signer, canonical_query, quote_path

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED = "UNSIGNED-PAYLOAD"
_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_RETRY_STATUS = frozenset({500, 502, 503, 504})
_RETRY_CODES = frozenset({"InternalError", "SlowDown", "ServiceUnavailable"})
Body = bytes | bytearray | memoryview


class Unconfirmed(DependencyDown):
    """A non-idempotent request (POST) reached S3, or may have, but its outcome is unknown:
    the link broke after it was sent, or S3 answered 5xx. It is never re-sent blindly."""


class S3Client:
    """A thread-safe S3 client over at most ``pool_size`` idle keep-alive connections.

    Retry rules. An idempotent request (GET, HEAD, PUT of an object or part, DELETE) is re-sent
    at once when a reused keep-alive link turns out closed, and up to ``retries`` times with
    backoff on network errors and 5xx. A POST (create or complete a multipart upload) goes out
    on a fresh link and is re-sent only when that link could not even be opened (nothing was
    written); once a byte may have reached the server, a broken link or a 5xx raises
    :class:`Unconfirmed`: a second "create" would leave an orphan upload. "Complete" is then
    settled by asking S3 (see :meth:`complete_multipart`).
    """

    def __init__(
        self, endpoint: S3Endpoint, *, pool_size: int = 32, timeout: float = 60.0, retries: int = 3
    ) -> None:
        parts = urlsplit(endpoint.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise OperationFailed(f"S3 endpoint {endpoint.url!r} is not an http(s) URL")
        self.endpoint = endpoint
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        default_port = self._port == (443 if self._https else 80)
        self._host_header = parts.netloc if not default_port else parts.hostname
        self._timeout = timeout
        self._retries = retries
        self._pool_size = pool_size
        self._idle: list[Link] = []
        self._lock = threading.Lock()
        self._signer = Signer(endpoint)
        self._ssl = (
            ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE"))
            if self._https
            else None
        )

    # Connections -------------------------------------------------------------------------
    def _acquire(self, fresh: bool = False) -> tuple[Link, bool]:
        """An idle link (``True``: reused, it may have gone stale) or a new one (always new
        when ``fresh``)."""
        if not fresh:
            with self._lock:
                if self._idle:
                    return self._idle.pop(), True
        return Link(self._host, self._port, self._timeout, self._ssl), False

    def _release(self, conn: Link) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # Requests ----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        bucket: str,
        key: str = "",
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: Body = b"",
        payload_sha256: str | None = None,
        ok: tuple[int, ...] = (200,),
        what: str = "",
    ) -> Response:
        """Send one signed request and return the response with its body unread.

        Raises DependencyDown when the server cannot be reached (after retries), ObjectMissing
        on 404, OperationFailed on any other status outside ``ok``.
        """
        path = "/" + quote_path(bucket) + ("/" + quote_path(key, safe="/") if key else "")
        query = canonical_query(params or {})
        label = what or f"{method} {bucket}/{key}".rstrip("/")
        idempotent = method != "POST"
        tries = Attempts(self._retries, self._pool_size)
        while True:
            send = self._signed_headers(method, path, query, headers, body, payload_sha256)
            conn: Link | None = None
            reused = False
            try:
                conn, reused = self._acquire(fresh=not idempotent)
                conn.send(method, path + ("?" + query if query else ""), send, body)
                status, answer = conn.read_head()
            except OSError as exc:
                if conn is not None:
                    conn.close()
                if conn is not None and not idempotent:
                    raise Unconfirmed(f"S3 at {self.endpoint.url}: {label} interrupted ({exc}); "
                                      "not re-sent, it may have been applied") from None
                if conn is not None and tries.stale_link(reused):
                    self.close()
                elif not tries.back_off(first_at_once=True):
                    raise DependencyDown(
                        f"S3 at {self.endpoint.url} unreachable during {label}: {exc}"
                    ) from None
                continue  # idempotent, or a POST whose link never opened (nothing was sent)
            response = Response(self._release, conn, status, answer)
            if status in ok:
                return response
            detail = _drain(response)
            if status in _RETRY_STATUS and not idempotent:
                code, message = _error_fields(detail)
                raise Unconfirmed(f"S3 {label} answered {status} {code} {message}".rstrip()
                                  + "; not re-sent, it may have been applied")
            if status in _RETRY_STATUS and tries.back_off(first_at_once=False):
                continue
            raise _status_error(label, status, detail)

    def _signed_headers(self, method: str, path: str, query: str, headers: dict[str, str] | None,
                        body: Body, payload_sha256: str | None) -> dict[str, str]:
        """``headers`` plus host, payload hash, length and the SigV4 ``Authorization``."""
        send = dict(headers or {})
        send["host"] = self._host_header
        send["x-amz-content-sha256"] = payload_sha256 or (
            EMPTY_SHA256 if not body else hashlib.sha256(body).hexdigest()
        )
        if body or method in ("PUT", "POST"):
            send["Content-Length"] = str(len(body))
        self._signer.sign(method, path, query, send)
        return send

    # Buckets -----------------------------------------------------------------------------
    def list_buckets(self) -> list[str]:
        """The names of every bucket."""
        with self.request("GET", "", what="list buckets") as resp:
            root = ET.fromstring(resp.read())
        return [el.text or "" for el in root.iter(f"{_NS}Name")]

    def bucket_exists(self, bucket: str) -> bool:
        """True if ``bucket`` exists (and is ours to read)."""
        try:
            self.request("HEAD", bucket, what=f"head bucket {bucket}").close()
        except ObjectMissing:
            return False
        return True

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket``; no error if it already exists. Raises InvalidInput (400) when
        the server refuses the name (rules vary between S3 servers)."""
        resp = self.request("PUT", bucket, ok=(200, 400, 409), what=f"create bucket {bucket}")
        body = resp.read()
        if resp.status == 400:
            code = re.search(rb"<Code>([^<]{1,64})</Code>", body)
            reason = code.group(1).decode(errors="replace") if code else "bad request"
            raise InvalidInput(f"S3 refused to create bucket {bucket!r} ({reason})")

    def list_objects(self, bucket: str, prefix: str = "") -> Iterator[ListedObject]:
        """Every object under ``prefix``, in key order, page by page (keys URL-encoded on the
        wire so control characters survive the XML)."""
        token = ""
        while True:
            params = {"list-type": "2", "max-keys": "1000", "encoding-type": "url"}
            if prefix:
                params["prefix"] = prefix
            if token:
                params["continuation-token"] = token
            with self.request("GET", bucket, params=params, what=f"list {bucket}") as resp:
                root = ET.fromstring(resp.read())
            for item in root.iter(f"{_NS}Contents"):
                yield ListedObject(
                    key=unquote_plus(item.findtext(f"{_NS}Key", "")),
                    size=int(item.findtext(f"{_NS}Size", "0")),
                    etag=item.findtext(f"{_NS}ETag", "").strip('"'),
                    last_modified=item.findtext(f"{_NS}LastModified", ""),
                )
            token = root.findtext(f"{_NS}NextContinuationToken", "")
            if root.findtext(f"{_NS}IsTruncated", "false") != "true" or not token:
                return

    # Objects -----------------------------------------------------------------------------
    def get_object(
        self, bucket: str, key: str, byte_range: tuple[int, int] | None = None
    ) -> Response:
        """Start reading an object (``byte_range``: first and last byte, inclusive)."""
        headers = {"Range": f"bytes={byte_range[0]}-{byte_range[1]}"} if byte_range else None
        return self.request(
            "GET", bucket, key, headers=headers, ok=(200, 206), payload_sha256=EMPTY_SHA256
        )

    def head_object(self, bucket: str, key: str) -> ObjectHead:
        """An object's size, etag, content type and metadata."""
        with self.request("HEAD", bucket, key) as resp:
            return resp.head()

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
        sha256: str | None = None,
        if_absent: bool = False,
    ) -> str:
        """Store a whole object and return its etag; ``""`` when ``if_absent`` and the key
        exists (then nothing is written). The server checks the body against its Content-MD5
        (and ``sha256``, where it checks signed payloads)."""
        headers = _object_headers(content_type, metadata)
        headers["Content-MD5"] = _md5_header(body)
        if if_absent:
            headers["If-None-Match"] = "*"
        with self.request(
            "PUT",
            bucket,
            key,
            headers=headers,
            body=body,
            ok=(200, 412),
            payload_sha256=sha256 or UNSIGNED,
        ) as resp:
            resp.read()
            return "" if resp.status == 412 else resp.header("ETag").strip('"')

    def create_multipart(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
    ) -> str:
        """Start a multipart upload and return its id."""
        with self.request(
            "POST",
            bucket,
            key,
            params={"uploads": ""},
            headers=_object_headers(content_type, metadata),
        ) as resp:
            return ET.fromstring(resp.read()).findtext(f"{_NS}UploadId", "")

    def upload_part(self, bucket: str, key: str, upload_id: str, number: int, body: Body) -> str:
        """Upload part ``number`` and return the etag the server gives it.

        The server checks the part against its Content-MD5 and refuses a damaged one (BadDigest);
        the etag itself is opaque (not an MD5 under SSE-KMS or SSE-C), so it is not compared.
        """
        digest = hashlib.md5(body, usedforsecurity=False).digest()
        params = {"partNumber": str(number), "uploadId": upload_id}
        headers = {"Content-MD5": base64.b64encode(digest).decode()}
        with self.request(
            "PUT",
            bucket,
            key,
            params=params,
            headers=headers,
            body=body,
            payload_sha256=UNSIGNED,
        ) as resp:
            resp.read()
            etag = resp.header("ETag").strip('"')
        if not etag:
            raise OperationFailed(f"S3 gave part {number} of {bucket}/{key} no etag")
        return etag

    def complete_multipart(self, bucket: str, key: str, upload_id: str, etags: list[str],
                           *, size: int | None = None) -> str:
        """Assemble the parts (etags in part order) into an object of ``size`` bytes (when
        known); return its etag.

        When the answer is lost (broken link, 5xx, an error inside a 200) the request is not
        re-posted blindly: :func:`~autograph.s3.completion.settle` asks S3 whether the upload is
        still open (then it is completed again) or the object is there and is ours.
        """
        where = f"{bucket}/{key}"
        for _ in range(self._retries + 1):
            try:
                with self.request("POST", bucket, key, params={"uploadId": upload_id},
                                  body=completion_body(etags),
                                  what=f"complete upload {where}") as resp:
                    reply = resp.read()
                root = ET.fromstring(reply)
                if not root.tag.endswith("Error"):
                    return root.findtext(f"{_NS}ETag", "").strip('"')
                code, message = _error_fields(reply)
                if code not in _RETRY_CODES:
                    raise OperationFailed(f"S3 complete upload {where} failed: {code} {message}")
            except Unconfirmed:
                pass
            done = settle(self.request, bucket, key, upload_id, etags, size)
            if done is not None:  # None: still open, complete it again
                return done
        raise OperationFailed(f"S3 complete upload {where}: not confirmed after "
                              f"{self._retries + 1} attempts (the upload is still open)")

    def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        """Drop an unfinished multipart upload (best effort)."""
        with contextlib.suppress(DependencyDown, OperationFailed):
            self.request(
                "DELETE", bucket, key, params={"uploadId": upload_id}, ok=(200, 204)
            ).read()

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object; no error if it is already gone."""
        with contextlib.suppress(ObjectMissing):
            self.request("DELETE", bucket, key, ok=(200, 204)).read()


def _object_headers(content_type: str, metadata: dict[str, str] | None) -> dict[str, str]:
    headers = {META_PREFIX + k: v for k, v in (metadata or {}).items()}
    if content_type:
        headers["Content-Type"] = content_type
    return headers


def _md5_header(body: Body) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def _drain(response: Response) -> bytes:
    """The body of an error answer, or nothing when the link breaks while reading it."""
    try:
        return response.read()
    except DependencyDown:
        return b""


def _status_error(label: str, status: int, detail: bytes) -> ObjectMissing | OperationFailed:
    """The error for an answer outside the expected statuses: ObjectMissing on 404."""
    code, message = _error_fields(detail)
    if status == 404:
        return ObjectMissing(f"{label}: {code or 'not found'}")
    return OperationFailed(f"S3 {label} failed: {status} {code} {message}".rstrip())


def _error_fields(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "", ""
    return root.findtext("Code", "") or "", root.findtext("Message", "") or ""
