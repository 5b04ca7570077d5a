"""S3 request signing (AWS Signature Version 4) and where to connect, for the lean client.

The signing key is derived once per day and cached; every header handed to :meth:`Signer.sign`
is signed (S3 requires the ``x-amz-*`` ones to be).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from autograph.config import Settings
from autograph.secrets import Credentials


@dataclass(frozen=True)
class S3Endpoint:
    """Where and as whom to connect. ``repr`` hides the secret."""

    url: str
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"

    @classmethod
    def application(cls, settings: Settings, creds: Credentials) -> S3Endpoint:
        """The application S3 server (buckets diagrams, exports, uploads)."""
        return cls(settings.s3_url, creds.s3_access_key, creds.s3_secret_key, settings.s3_region)

    @classmethod
    def backups(cls, settings: Settings, creds: Credentials) -> S3Endpoint:
        """The server holding the secondary backup copy (may be another one)."""
        return cls(
            settings.backup_s3_endpoint or settings.s3_url,
            creds.backup_s3_access_key,
            creds.backup_s3_secret_key,
            settings.s3_region,
        )


def quote_path(text: str, safe: str = "") -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe=safe + "-_.~")


class Signer:
    """AWS Signature Version 4 for S3, with the day's signing key cached."""

    def __init__(self, endpoint: S3Endpoint) -> None:
        self._endpoint = endpoint
        self._day = ""
        self._key = b""
        self._lock = threading.Lock()

    def _day_key(self, day: str) -> bytes:
        with self._lock:
            if day != self._day:
                key = ("AWS4" + self._endpoint.secret_key).encode()
                for part in (day, self._endpoint.region, "s3", "aws4_request"):
                    key = hmac.digest(key, part.encode(), "sha256")
                self._day, self._key = day, key
            return self._key

    def sign(self, method: str, path: str, query: str, headers: dict[str, str],
             stamp: str | None = None) -> None:
        """Add ``x-amz-date`` and ``Authorization`` to ``headers`` (which must hold ``host`` and
        ``x-amz-content-sha256``); every header present is signed. ``stamp`` (``YYYYMMDDTHHMMSSZ``,
        default now) pins the time, for tests against a reference signer."""
        stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers["x-amz-date"] = stamp
        names = sorted(headers, key=str.lower)
        canonical_headers = "".join(
            f"{n.lower()}:{' '.join(str(headers[n]).split())}\n" for n in names
        )
        signed = ";".join(n.lower() for n in names)
        request = "\n".join(
            (method, path, query, canonical_headers, signed, headers["x-amz-content-sha256"])
        )
        scope = f"{stamp[:8]}/{self._endpoint.region}/s3/aws4_request"
        to_sign = "\n".join(
            ("AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(request.encode()).hexdigest())
        )
        signature = hmac.new(self._day_key(stamp[:8]), to_sign.encode(), "sha256").hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._endpoint.access_key}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )


def canonical_query(params: dict[str, str]) -> str:
    return "&".join(f"{quote_path(k)}={quote_path(v)}" for k, v in sorted(params.items()))
