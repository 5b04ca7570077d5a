"""boto3 clients for the application S3 server and the backup (secondary) S3 server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from autograph.config import Settings
from autograph.secrets import Credentials


def make_client(
    endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1",
    *, max_pool: int = 32, connect_timeout: float = 3.0, read_timeout: float = 60.0,
    retries: int = 5, transfers: bool = True,
) -> Any:
    """A path-style S3 client for ``endpoint`` with bounded timeouts and retries.

    ``transfers=False``: a plain botocore client, without boto3's managed-transfer methods
    (``upload_fileobj``…) and so without importing boto3, s3transfer and multiprocessing
    (≈ 0.1 CPU s of a backup command's start-up); the backup tiers use only the S3 API calls.
    """
    # Imported here: only the processes that talk to S3 pay for it.
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        max_pool_connections=max_pool,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": retries, "mode": "standard"},
    )
    options = {"endpoint_url": endpoint, "aws_access_key_id": access_key,
               "aws_secret_access_key": secret_key, "region_name": region, "config": config}
    if transfers:
        import boto3

        return boto3.session.Session().client("s3", **options)
    import botocore.session

    return botocore.session.get_session().create_client("s3", **options)


class LazyClient:
    """A boto3 client built on first use (once, thread-safe), standing in for it.

    Importing boto3 and loading its S3 model costs ~0.3 s on a quiet machine and seconds on a
    loaded one; a backup's first S3 request happens in a thread beside ``pg_dump``, so building
    the client there keeps it off the command's critical path.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._client: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._build()
        return getattr(self._client, name)


def app_client(settings: Settings, creds: Credentials, **options: Any) -> Any:
    """The client for the application's buckets (diagrams, exports, uploads)."""
    return make_client(settings.s3_url, creds.s3_access_key, creds.s3_secret_key,
                       settings.s3_region, **options)


def backup_client(settings: Settings, creds: Credentials, **options: Any) -> Any:
    """The client for the secondary backup copy (may be another server)."""
    endpoint = settings.backup_s3_endpoint or settings.s3_url
    options.setdefault("transfers", False)  # S3 API calls only (see make_client)
    return make_client(endpoint, creds.backup_s3_access_key, creds.backup_s3_secret_key,
                       settings.s3_region, **options)


def ensure_buckets(client: Any, names: tuple[str, ...] | list[str]) -> list[str]:
    """Create the named buckets that do not exist yet; return those created."""
    existing = {bucket["Name"] for bucket in client.list_buckets().get("Buckets", [])}
    created = []
    for name in names:
        if name not in existing:
            client.create_bucket(Bucket=name)
            created.append(name)
    return created
