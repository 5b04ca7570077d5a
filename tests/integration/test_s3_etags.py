"""The backup tier's uploads do not take an ETag for an MD5 where it is not one (SSE-KMS and
SSE-C answer opaque ETags), and still catch a wrong MD5 ETag where the server gives MD5s.

The real S3 server sits behind a real HTTP proxy that rewrites the answers' headers as such a
server would send them.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from autograph.dr.storage.s3 import S3Store
from autograph.errors import IntegrityError, NotFound
from autograph.s3.boto import make_client
from autograph.s3.etags import contradicts, multipart_etag, multipart_etag_from_parts
from autograph.stack.lifecycle import Stack
from bucketbackups import S3Proxy

Headers = list[tuple[str, str]]


@pytest.fixture
def proxy(infra_stack: Stack) -> Iterator[S3Proxy]:
    front = S3Proxy(infra_stack.settings.s3_url)
    yield front
    front.close()


@pytest.fixture
def store(proxy: S3Proxy, infra_stack: Stack) -> Iterator[S3Store]:
    client = make_client(proxy.url, infra_stack.creds.backup_s3_access_key,
                         infra_stack.creds.backup_s3_secret_key, retries=1, transfers=False)
    tier = S3Store(client, infra_stack.settings.backup_bucket_database,
                   f"etags-{secrets.token_hex(4)}/", part_size=5 * 1024 * 1024)
    yield tier
    proxy.answer_headers = None
    for item in tier.list():
        tier.delete(item.key)


def _rewrite_put_etag(etag: str, extra: Headers) -> Callable[[str, Headers], Headers]:
    def rewrite(method: str, headers: Headers) -> Headers:
        if method != "PUT":
            return headers
        kept = [(n, v) for n, v in headers if n.lower() != "etag"]
        return [*kept, ("ETag", f'"{etag}"'), *extra]
    return rewrite


@pytest.mark.parametrize("extra", [
    [("x-amz-server-side-encryption", "aws:kms")],
    [("x-amz-server-side-encryption-customer-algorithm", "AES256")],
], ids=["sse-kms", "sse-c"])
def test_an_opaque_etag_under_sse_kms_or_sse_c_is_not_taken_for_a_bad_md5(
        store: S3Store, proxy: S3Proxy, extra: Headers) -> None:
    proxy.answer_headers = _rewrite_put_etag(secrets.token_hex(16), extra)  # 32 hex, not MD5
    data = os.urandom(4096)
    stored = store.put("kms.dump", io.BytesIO(data))
    assert stored.size == len(data)
    with store.open("kms.dump") as stream:
        assert stream.read() == data


def test_an_etag_not_shaped_like_an_md5_is_not_compared(store: S3Store, proxy: S3Proxy) -> None:
    proxy.answer_headers = _rewrite_put_etag("v1-opaque-version-tag", [])
    store.put("odd.dump", io.BytesIO(b"payload"))
    assert store.stat("odd.dump").size == len(b"payload")


def test_a_wrong_md5_etag_from_a_plain_server_still_fails_and_leaves_nothing(
        store: S3Store, proxy: S3Proxy) -> None:
    proxy.answer_headers = _rewrite_put_etag("0" * 32, [])
    with pytest.raises(IntegrityError, match="ETag"):
        store.put("bad.dump", io.BytesIO(b"payload"))
    proxy.answer_headers = None
    with pytest.raises(NotFound):
        store.stat("bad.dump")


def test_sse_s3_etags_are_still_md5s_and_compared(store: S3Store, proxy: S3Proxy) -> None:
    """SSE-S3 (AES256 on the server's keys) keeps MD5 ETags: a mismatch there is damage."""
    proxy.answer_headers = _rewrite_put_etag("0" * 32, [("x-amz-server-side-encryption",
                                                          "AES256")])
    with pytest.raises(IntegrityError):
        store.put("sse-s3.dump", io.BytesIO(b"payload"))


def test_the_multipart_etag_the_server_gives_is_the_one_derived_from_the_parts(
        store: S3Store, infra_stack: Stack) -> None:
    """Our derivation of the usual multipart ETag agrees with the real server's, from the
    part MD5s and from the part ETags alike (what a lost "complete" is settled against)."""
    parts = [os.urandom(5 * 1024 * 1024), b"tail"]
    store.put("two.dump", io.BytesIO(b"".join(parts)))
    head = store.client.head_object(Bucket=store.bucket, Key=store.full_key("two.dump"))
    md5s = [hashlib.md5(p, usedforsecurity=False).digest() for p in parts]
    assert head["ETag"].strip('"') == multipart_etag(md5s)
    assert multipart_etag_from_parts([d.hex() for d in md5s]) == multipart_etag(md5s)
    assert multipart_etag_from_parts(["opaque", md5s[0].hex()]) is None
    assert not contradicts(head["ETag"], multipart_etag(md5s), {})
