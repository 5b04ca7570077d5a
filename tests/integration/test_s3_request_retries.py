"""Which requests the bulk S3 client sends again, on the real S3 server behind a real HTTP proxy
that answers 500 once for a chosen request (before or after the server applied it).

Idempotent requests (a part's PUT) are re-sent after a 5xx; a POST is not, except "complete",
which is settled by asking the server; a POST whose link never opened is re-sent.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.errors import OperationFailed
from autograph.s3.bulk import S3Client, Unconfirmed
from autograph.s3.sigv4 import S3Endpoint
from autograph.stack.lifecycle import Stack
from bucketbackups import Buckets, S3Proxy, bucket_settings
from stackutil import free_port_block

PART = 5 * 1024 * 1024


@pytest.fixture
def buckets(infra_stack: Stack, tmp_path: Path) -> Iterator[Buckets]:
    with bucket_settings(infra_stack, tmp_path) as handle:
        yield handle


@pytest.fixture
def proxy(infra_stack: Stack) -> Iterator[S3Proxy]:
    front = S3Proxy(infra_stack.settings.s3_url)
    yield front
    front.close()


def _client(url: str, stack: Stack, retries: int = 2) -> S3Client:
    return S3Client(S3Endpoint(url, stack.creds.s3_access_key, stack.creds.s3_secret_key),
                    timeout=10.0, retries=retries)


def _posts(proxy: S3Proxy, marker: str) -> int:
    return sum(1 for line in proxy.seen if line.startswith("POST ") and marker in line)


def _uploads(buckets: Buckets, bucket: str) -> list[str]:
    answer = buckets.client.list_multipart_uploads(Bucket=bucket)
    return [u["UploadId"] for u in answer.get("Uploads", [])]


def _parts(client: S3Client, bucket: str, key: str) -> tuple[str, list[str], bytes]:
    data = [os.urandom(PART), os.urandom(PART), b"tail"]
    upload = client.create_multipart(bucket, key)
    etags = [client.upload_part(bucket, key, upload, n, part)
             for n, part in enumerate(data, start=1)]
    return upload, etags, b"".join(data)


@pytest.mark.parametrize("reach_server", [True, False], ids=["applied", "not-applied"])
def test_a_create_answered_500_is_not_re_sent(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack, reach_server: bool) -> None:
    target = buckets.make("dst", {})
    client = _client(proxy.url, infra_stack)
    proxy.fail_once("POST", "?uploads", reach_server=reach_server)
    with pytest.raises(Unconfirmed, match="not re-sent"):
        client.create_multipart(target, "big")
    assert _posts(proxy, "?uploads") == 1
    # Applied: the server holds the upload the 500 hid (what a re-send would have doubled).
    assert len(_uploads(buckets, target)) == (1 if reach_server else 0)


def test_a_complete_answered_500_after_it_took_effect_is_confirmed_not_re_posted(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    target = buckets.make("dst", {})
    client = _client(proxy.url, infra_stack)
    upload, etags, data = _parts(client, target, "big")
    proxy.fail_once("POST", "uploadId=", reach_server=True)
    etag = client.complete_multipart(target, "big", upload, etags, size=len(data))
    assert _posts(proxy, "uploadId=") == 1
    stored = buckets.client.get_object(Bucket=target, Key="big")
    assert stored["Body"].read() == data
    assert etag == stored["ETag"].strip('"')
    assert _uploads(buckets, target) == []


def test_a_complete_answered_500_before_it_arrived_is_completed_again(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    target = buckets.make("dst", {})
    client = _client(proxy.url, infra_stack)
    upload, etags, data = _parts(client, target, "big")
    proxy.fail_once("POST", "uploadId=", reach_server=False)
    client.complete_multipart(target, "big", upload, etags, size=len(data))
    assert _posts(proxy, "uploadId=") == 2  # the upload was still open: safe to complete
    assert buckets.client.get_object(Bucket=target, Key="big")["Body"].read() == data


def test_a_completed_upload_whose_object_was_replaced_is_reported_not_accepted(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    """The completion took effect, its answer was lost, and another writer replaced the object
    before we looked: the object there is not ours, so the completion is not confirmed."""
    target = buckets.make("dst", {})
    client = _client(proxy.url, infra_stack)
    upload, etags, data = _parts(client, target, "big")
    proxy.fail_once("POST", "uploadId=", reach_server=True)
    original = proxy.answer_headers

    def replace_after_complete(method: str, headers: list[tuple[str, str]]
                               ) -> list[tuple[str, str]]:
        if method == "POST":
            buckets.client.put_object(Bucket=target, Key="big", Body=b"someone else")
        return headers

    proxy.answer_headers = replace_after_complete
    with pytest.raises(OperationFailed, match="not the one assembled"):
        client.complete_multipart(target, "big", upload, etags, size=len(data))
    proxy.answer_headers = original
    assert _posts(proxy, "uploadId=") == 1


def test_a_part_answered_500_is_re_sent(
        buckets: Buckets, proxy: S3Proxy, infra_stack: Stack) -> None:
    target = buckets.make("dst", {})
    client = _client(proxy.url, infra_stack)
    upload = client.create_multipart(target, "big")
    proxy.fail_once("PUT", "partNumber=1", reach_server=True)
    etags = [client.upload_part(target, "big", upload, 1, b"p" * PART),
             client.upload_part(target, "big", upload, 2, b"q")]
    client.complete_multipart(target, "big", upload, etags)
    assert sum(1 for line in proxy.seen if "partNumber=1&" in line) == 2
    assert buckets.client.get_object(Bucket=target, Key="big")["Body"].read() == \
        b"p" * PART + b"q"


def test_a_post_whose_link_never_opened_is_sent_when_the_server_appears(
        buckets: Buckets, infra_stack: Stack) -> None:
    """Connection refused: nothing was written, so the POST goes out again (with backoff)
    and reaches the server exactly once."""
    target = buckets.make("dst", {})
    port = free_port_block()
    started: list[S3Proxy] = []
    timer = threading.Timer(0.5, lambda: started.append(
        S3Proxy(infra_stack.settings.s3_url, port=port)))
    timer.start()
    try:
        upload = _client(f"http://127.0.0.1:{port}", infra_stack, retries=6).create_multipart(
            target, "big")
        timer.join()
        assert upload
        assert _posts(started[0], "?uploads") == 1
        assert _uploads(buckets, target) == [upload]
    finally:
        timer.join()
        for front in started:
            front.close()
