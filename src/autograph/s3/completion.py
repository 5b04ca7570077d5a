"""Finding out whether a CompleteMultipartUpload whose answer was lost (broken link, 5xx, or an
error inside a 200) took effect, instead of posting it again blindly.

The upload still open (ListParts answers) means the completion did not happen, so the request
may go out again. The upload gone means it was completed (or aborted): the object is then
accepted as ours only if it is there and matches what we sent, that is its ETag equals the
MD5-of-MD5s derived from the parts' ETags where those are MD5s, or else (opaque ETags: SSE-KMS,
SSE-C) its ETag counts the same number of parts and its size is the expected one. Anything else
is reported: a completion that cannot be confirmed is a failure, never a silent success.
"""

from __future__ import annotations

from collections.abc import Callable

from autograph.errors import OperationFailed
from autograph.s3.etags import contradicts, multipart_etag_from_parts
from autograph.s3.response import ObjectMissing, Response

Request = Callable[..., Response]  # S3Client.request


def completion_body(etags: list[str]) -> bytes:
    """The CompleteMultipartUpload document for parts 1..N with these ETags."""
    parts = "".join(
        f'<Part><PartNumber>{n}</PartNumber><ETag>"{e}"</ETag></Part>'
        for n, e in enumerate(etags, start=1)
    )
    return f"<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>".encode()


def settle(request: Request, bucket: str, key: str, upload_id: str, etags: list[str],
           size: int | None) -> str | None:
    """The object's ETag when the completion took effect, None when it did not
    (the upload is still there: completing it again is safe). Raises OperationFailed when the
    upload is gone and the object is absent or not the one assembled from these parts;
    DependencyDown when S3 cannot be asked."""
    where = f"{bucket}/{key}"
    try:
        request("GET", bucket, key, params={"uploadId": upload_id, "max-parts": "1"},
                       what=f"list parts of {where}").read()
        return None
    except ObjectMissing:
        pass  # NoSuchUpload: completed or aborted; the object says which
    try:
        with request("HEAD", bucket, key, what=f"head {where}") as resp:
            head, headers = resp.head(), resp.headers
    except ObjectMissing:
        raise OperationFailed(
            f"S3 complete upload {where}: the upload is gone and the object absent"
        ) from None
    expected = multipart_etag_from_parts(etags)
    if expected is not None and head.etag.lower() == expected:
        return head.etag
    mismatch = expected is not None and contradicts(head.etag, expected, headers)
    if not mismatch and head.etag.endswith(f"-{len(etags)}") and size in (None, head.size):
        return head.etag  # opaque ETag (SSE-KMS/SSE-C): same part count and size
    raise OperationFailed(
        f"S3 complete upload {where}: the upload is gone and the object there "
        f"(etag {head.etag}, {head.size} bytes) is not the one assembled from {len(etags)} parts"
    )
