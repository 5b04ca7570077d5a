"""The off-site store the kit points at: reaching it, the deployment marker in it, and the
settings a kit implies.

Today the off-site store is the backup S3 tier on an endpoint of its own
(``AUTOGRAPH_BACKUP_S3_*``): another server, another failure domain. The deployment marker
(``deployment.json`` at the top of the database backup bucket) says whose backups the store
holds, so a kit of another deployment is refused before anything is written.
"""

from __future__ import annotations

import io
import json
from typing import Any

from autograph.config import Settings, load_settings
from autograph.dr.kit.document import RecoveryKit
from autograph.errors import AutographError, DependencyDown, InvalidInput, NotFound
from autograph.secrets import Credentials

MARKER_KEY = "deployment.json"


def endpoint(settings: Settings) -> str | None:
    """The off-site store's URL, or None when backups have no store of their own."""
    return settings.backup_s3_endpoint


def _client(settings: Settings, creds: Credentials) -> Any:
    from autograph.s3.boto import backup_client

    return backup_client(settings, creds, connect_timeout=3.0, read_timeout=15.0, retries=1)


def _unreachable(settings: Settings, exc: Exception) -> AutographError:
    from autograph.dr.storage.s3 import s3_error

    found = exc if isinstance(exc, AutographError) else s3_error(exc, "off-site store")
    if isinstance(found, NotFound):
        return found
    code = found.message.rsplit("S3 error ", 1)[-1]
    if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403"):
        return DependencyDown(f"the off-site store at {endpoint(settings)} refused the "
                              f"credentials ({code})")
    return DependencyDown(f"the off-site store at {endpoint(settings)} is unreachable: "
                          f"{found.message}")


def probe(settings: Settings, creds: Credentials) -> dict[str, Any]:
    """Reach the off-site store's backup buckets; return where it is.

    Raises InvalidInput when no off-site store is configured, DependencyDown naming the store
    when it does not answer or refuses the credentials.
    """
    url = endpoint(settings)
    if url is None:
        raise InvalidInput("no off-site store configured: recovering a lost machine needs one "
                           "(the recovery kit names it; or set AUTOGRAPH_BACKUP_S3_ENDPOINT)")
    client = _client(settings, creds)
    buckets = [settings.backup_bucket_database, settings.backup_bucket_objects]
    for bucket in buckets:
        try:
            client.head_bucket(Bucket=bucket)
        except Exception as exc:  # every boto3 failure is translated and named
            raise _unreachable(settings, exc) from None
    return {"endpoint": url, "buckets": buckets}


def read_marker(settings: Settings, creds: Credentials) -> str | None:
    """The deployment id the store's marker names (None: no marker). Raises DependencyDown."""
    try:
        body = _client(settings, creds).get_object(
            Bucket=settings.backup_bucket_database, Key=MARKER_KEY)["Body"].read()
    except Exception as exc:
        found = _unreachable(settings, exc)
        if isinstance(found, NotFound):
            return None
        raise found from None
    try:
        return str(json.loads(body)["deployment_id"])
    except (ValueError, KeyError, TypeError):
        return None


def write_marker(settings: Settings, creds: Credentials, deployment_id: str) -> None:
    """Record whose backups the store holds (once; an existing marker is left as it is)."""
    if read_marker(settings, creds) is not None:
        return
    body = json.dumps({"deployment_id": deployment_id}).encode()
    try:
        _client(settings, creds).put_object(Bucket=settings.backup_bucket_database,
                                            Key=MARKER_KEY, Body=io.BytesIO(body))
    except Exception as exc:
        raise _unreachable(settings, exc) from None


def kit_settings(kit: RecoveryKit, base: Settings) -> Settings:
    """``base`` with the kit's off-site store and the names the restored data expects."""
    values: dict[str, Any] = {name: getattr(base, name) for name in type(base).model_fields}
    values.update({
        "backup_s3_endpoint": kit.offsite.endpoint,
        "backup_s3_access_key": kit.offsite.access_key,
        "backup_s3_secret_key": kit.offsite.secret_key,
        "backup_bucket_database": kit.offsite.bucket_database,
        "backup_bucket_objects": kit.offsite.bucket_objects,
        "s3_region": kit.offsite.region,
        "pg_user": kit.restored_data.pg_user,
        "pg_database": kit.restored_data.pg_database,
        "admin_email": kit.restored_data.admin_email,
        "app_buckets": tuple(kit.restored_data.app_buckets),
    })
    return load_settings(**values)


def kit_credentials(kit: RecoveryKit, settings: Settings) -> Credentials:
    """Credentials for reaching the off-site store before anything is installed (the
    application's own ones are placeholders until the kit's secrets are written)."""
    return Credentials(pg_password="", redis_password="", s3_access_key="", s3_secret_key="",
                       admin_api_key="", backup_s3_access_key=kit.offsite.access_key,
                       backup_s3_secret_key=kit.offsite.secret_key)
