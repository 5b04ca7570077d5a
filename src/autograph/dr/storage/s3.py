"""The secondary tier: a bucket (and key prefix) on an S3 server, through boto3.

Uploads are multipart above one part (16 MiB), parts sent concurrently (bounded: memory stays at
a few parts), each with its Content-MD5 so the server rejects a damaged part; the final ETag is
compared with the one expected from the parts' MD5s only where it is an MD5 (see
:mod:`autograph.s3.etags`: never under SSE-KMS/SSE-C, whose ETags are opaque).
Small files go in one PUT with Content-MD5. An interrupted upload is aborted, so nothing
appears under the key. Connection failures raise DependencyDown.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

from botocore.exceptions import BotoCoreError, ClientError

from autograph.dr.storage import (
    ByteProgress,
    HashedWriter,
    HashingCounter,
    StoredObject,
    fill,
)
from autograph.errors import (
    AutographError,
    DependencyDown,
    IntegrityError,
    NotFound,
    OperationFailed,
)
from autograph.s3.etags import contradicts, multipart_etag

PART_SIZE = 16 * 1024 * 1024
MAX_IN_FLIGHT = 3
_MISSING = {"404", "NoSuchKey", "NotFound"}


def s3_error(exc: Exception, where: str) -> AutographError:
    """Translate a boto3 error into NotFound, DependencyDown or OperationFailed."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            return NotFound(f"{where}: not found")
        if code == "NoSuchBucket":
            return DependencyDown(f"{where}: the bucket does not exist")
        return OperationFailed(f"{where}: S3 error {code or 'unknown'}")
    return DependencyDown(f"{where}: S3 unreachable ({type(exc).__name__})")


class S3Writer(HashedWriter):
    """A multipart upload fed by ``write``; completed on ``commit``, aborted on ``abort``."""

    def __init__(self, store: S3Store, key: str, part_size: int = PART_SIZE) -> None:
        self._store = store
        self.key = key
        self._full_key = store.full_key(key)
        self._part_size = part_size
        self._buffer = bytearray()
        self._counter = HashingCounter()
        self._upload_id: str | None = None
        self._parts: list[Future[dict[str, Any]]] = []
        self._part_md5s: list[bytes] = []
        self._pool: ThreadPoolExecutor | None = None
        self.result: StoredObject | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Append bytes; a part is sent whenever a full part is buffered."""
        self._counter.update(data)
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            part = bytes(self._buffer[: self._part_size])
            del self._buffer[: self._part_size]
            self._send_part(part)
        return len(data)

    def _send_part(self, data: bytes) -> None:
        client = self._store.client
        if self._upload_id is None:
            try:
                created = client.create_multipart_upload(Bucket=self._store.bucket,
                                                         Key=self._full_key)
            except (BotoCoreError, ClientError) as exc:
                raise s3_error(exc, self._where()) from None
            self._upload_id = created["UploadId"]
            self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="s3-part")
        assert self._pool is not None
        while len([f for f in self._parts if not f.done()]) >= MAX_IN_FLIGHT:
            next(f for f in self._parts if not f.done()).result()
        digest = hashlib.md5(data, usedforsecurity=False).digest()
        self._part_md5s.append(digest)
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._upload_part, number, data, digest))

    def _upload_part(self, number: int, data: bytes, digest: bytes) -> dict[str, Any]:
        try:
            answer = self._store.client.upload_part(
                Bucket=self._store.bucket, Key=self._full_key, UploadId=self._upload_id,
                PartNumber=number, Body=data, ContentMD5=base64.b64encode(digest).decode(),
            )
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, self._where()) from None
        return {"PartNumber": number, "ETag": answer["ETag"]}

    def _where(self) -> str:
        return f"s3://{self._store.bucket}/{self._full_key}"

    def commit(self) -> StoredObject:
        """Send the rest and complete the upload; check the server's ETag where possible."""
        client = self._store.client
        try:
            if self._upload_id is None:
                digest = hashlib.md5(self._buffer, usedforsecurity=False).digest()
                answer = client.put_object(
                    Bucket=self._store.bucket, Key=self._full_key, Body=bytes(self._buffer),
                    ContentMD5=base64.b64encode(digest).decode(),
                )
                expected = digest.hex()
            else:
                if self._buffer or not self._parts:
                    self._send_part(bytes(self._buffer))
                self._buffer = bytearray()
                parts = [future.result() for future in self._parts]
                answer = client.complete_multipart_upload(
                    Bucket=self._store.bucket, Key=self._full_key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
                expected = multipart_etag(self._part_md5s)
        except (BotoCoreError, ClientError) as exc:
            self.abort()
            raise s3_error(exc, self._where()) from None
        except BaseException:
            self.abort()
            raise
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
        etag = str(answer.get("ETag", "")).strip('"')
        headers = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        if contradicts(etag, expected, headers):
            self._store.delete(self.key)
            raise IntegrityError(f"{self._where()}: uploaded ETag {etag} != expected {expected}")
        self.result = StoredObject(self.key, self.size, None, self.hexdigest())
        return self.result

    def abort(self) -> None:
        """Abandon the upload: nothing appears under the key."""
        if self._pool is not None:
            for future in self._parts:
                future.cancel()
            self._pool.shutdown(wait=True)
        if self._upload_id is not None:
            # An unreachable server keeps the stale upload: clean_uploads reaps it later.
            with contextlib.suppress(BotoCoreError, ClientError):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._full_key, UploadId=self._upload_id)
            self._upload_id = None

    def __enter__(self) -> S3Writer:
        return self


class S3Store:
    """A BackupStore over ``bucket`` with keys under ``prefix`` (e.g. ``database/``)."""

    tier = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "",
                 part_size: int = PART_SIZE) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def full_key(self, key: str) -> str:
        if not key or key.startswith(".") or "/" in key:
            raise OperationFailed(f"invalid storage key {key!r}")
        return self.prefix + key

    def writer(self, key: str) -> S3Writer:
        return S3Writer(self, key, self.part_size)

    def put(self, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
            progress: ByteProgress = None) -> StoredObject:
        sink = self.writer(key)
        try:
            fill(sink, key, source, expected_sha256, progress)
        except BaseException:
            sink.abort()
            raise
        return sink.commit()

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        where = f"s3://{self.bucket}/{self.full_key(key)}"
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self.full_key(key))["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, where) from None
        try:
            yield cast(BinaryIO, _BodyReader(body, where))
        finally:
            body.close()

    def list(self, prefix: str = "") -> list[StoredObject]:
        found = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix, Delimiter="/")
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix):]
                    if key and "/" not in key:
                        found.append(StoredObject(key, int(item["Size"]), item["LastModified"]))
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, self.describe()) from None
        return sorted(found, key=lambda o: o.key)

    def stat(self, key: str) -> StoredObject:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, f"s3://{self.bucket}/{self.full_key(key)}") from None
        return StoredObject(key, int(head["ContentLength"]), head.get("LastModified"))

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))
        except (BotoCoreError, ClientError) as exc:
            error = s3_error(exc, f"s3://{self.bucket}/{self.full_key(key)}")
            if not isinstance(error, NotFound):
                raise error from None

    def clean_uploads(self) -> int:
        """Abort unfinished multipart uploads under the prefix; return how many."""
        count = 0
        try:
            answer = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix)
            for upload in answer.get("Uploads", []):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                   UploadId=upload["UploadId"])
                count += 1
        except (BotoCoreError, ClientError) as exc:
            raise s3_error(exc, self.describe()) from None
        return count


class _BodyReader:
    """A botocore StreamingBody as a plain binary reader whose errors are ours."""

    def __init__(self, body: Any, where: str) -> None:
        self._body = body
        self._where = where

    def read(self, size: int = -1) -> bytes:
        try:
            return bytes(self._body.read(None if size < 0 else size))
        except (BotoCoreError, ClientError, OSError) as exc:
            raise DependencyDown(f"{self._where}: download interrupted ({type(exc).__name__})"
                                 ) from None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._body.close()
