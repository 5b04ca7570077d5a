"""Jobs shared through the backup S3 bucket (``jobs/<id>.json``), so that ``GET
/api/admin/jobs/{id}`` answers on every gateway, not only the one that started the job
(SPEC §11: gateways on several hosts). Installed with ``AUTOGRAPH_LEASES=cluster``.

A job whose gateway died while it ran stays ``running`` here: its lease has expired and the
catalog shows whether its backup was committed.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from autograph.config import Settings
from autograph.dr.ops.jobs import Job, registry
from autograph.errors import DependencyDown
from autograph.secrets import Credentials

PREFIX = "jobs/"


class S3JobStore:
    """Job records as small JSON objects in one bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client, self.bucket = client, bucket

    def put(self, job: Job) -> None:
        """Write (replace) the job's record."""
        self.client.put_object(Bucket=self.bucket, Key=f"{PREFIX}{job.id}.json",
                               Body=job.model_dump_json().encode(),
                               ContentType="application/json")

    def fetch(self, job_id: str) -> Job | None:
        """The job's record, None if there is none. Raises DependencyDown if S3 fails."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket,
                                          Key=f"{PREFIX}{job_id}.json")["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise DependencyDown(f"job store unreachable: {exc}") from None
        except BotoCoreError as exc:
            raise DependencyDown(f"job store unreachable: {exc}") from None
        try:
            return Job.model_validate_json(body)
        except ValidationError:
            return None


def install(settings: Settings, creds: Credentials) -> S3JobStore | None:
    """With ``AUTOGRAPH_LEASES=cluster``, share this process's jobs through the backup bucket."""
    from autograph.s3.boto import backup_client

    if settings.leases != "cluster":
        return None
    store = S3JobStore(backup_client(settings, creds, retries=1, connect_timeout=2,
                                     read_timeout=5), settings.backup_bucket_database)
    registry.use_store(store)
    return store
