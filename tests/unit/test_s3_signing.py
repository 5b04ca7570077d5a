"""Our SigV4 signer against botocore's reference signer: same request, same signature."""

from __future__ import annotations

import hashlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from autograph.s3.sigv4 import S3Endpoint, Signer, canonical_query, quote_path

STAMP = "20261202T101530Z"
ENDPOINT = S3Endpoint("http://127.0.0.1:9000", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCY",
                      "eu-west-3")


def botocore_signature(method: str, url: str, headers: dict[str, str]) -> str:
    """The signature botocore computes for the same request at the same instant."""
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.context["timestamp"] = STAMP
    auth = S3SigV4Auth(Credentials(ENDPOINT.access_key, ENDPOINT.secret_key), "s3",
                       ENDPOINT.region)
    canonical = auth.canonical_request(request)
    return auth.signature(auth.string_to_sign(request, canonical), request)


@pytest.mark.parametrize(("method", "bucket", "key", "params", "extra"), [
    ("GET", "diagrams", "", {"list-type": "2", "prefix": "a b/", "continuation-token": "x+y="},
     {}),
    ("GET", "diagrams", "canvas/ab12.json", {}, {"range": "bytes=0-1023"}),
    ("PUT", "uploads", "über/ä ö+ü=&?.png", {},
     {"content-type": "image/png", "x-amz-meta-owner": "a  b",
      "content-md5": "1B2M2Y8AsgTpgAmY7PhCfg=="}),
    ("PUT", "exports", "p/q.bin", {"partNumber": "3", "uploadId": "2~abc/def=="}, {}),
    ("POST", "exports", "p/q.bin", {"uploads": ""}, {}),
    ("DELETE", "minio-backups", "snapshots/blobs/ff/ffee.blob", {}, {}),
])
def test_signature_matches_botocore(method: str, bucket: str, key: str,
                                    params: dict[str, str], extra: dict[str, str]) -> None:
    path = "/" + quote_path(bucket) + ("/" + quote_path(key, safe="/") if key else "")
    query = canonical_query(params)
    headers = {"host": "127.0.0.1:9000", **extra,
               "x-amz-content-sha256": hashlib.sha256(b"").hexdigest()}
    ours = dict(headers)
    Signer(ENDPOINT).sign(method, path, query, ours, stamp=STAMP)

    url = "http://127.0.0.1:9000" + path + ("?" + query if query else "")
    reference = botocore_signature(method, url, {**headers, "x-amz-date": STAMP})
    assert ours["Authorization"].endswith(f"Signature={reference}")
    assert "Credential=AKIDEXAMPLE/20261202/eu-west-3/s3/aws4_request" in ours["Authorization"]
