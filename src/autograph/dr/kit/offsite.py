"""The off-site store the kit points at: reaching it, the deployment marker in it, and the
settings a kit implies.

The off-site store is the off-site tier (``AUTOGRAPH_OFFSITE_S3_*``, see
:mod:`autograph.dr.storage.offsite`): another server, another failure domain, everything in
it encrypted. The deployment marker (``deployment.json`` under the off-site prefix, plain:
it holds no secret) says whose backups the store holds, so a kit of another deployment is
refused before anything is written.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from autograph.config import Settings, load_settings
from autograph.dr.kit.document import RecoveryKit
from autograph.errors import AutographError, DependencyDown, InvalidInput, NotFound
from autograph.saved_offsite import OFFSITE_FIELDS, SAVED_OFFSITE

MARKER_KEY = "deployment.json"


def endpoint(settings: Settings) -> str | None:
    """The off-site store's URL, or None when no off-site tier is configured."""
    return settings.offsite_s3_endpoint


def _client(settings: Settings) -> Any:
    from autograph.dr.storage.offsite import offsite_client

    return offsite_client(settings, connect_timeout=3.0, read_timeout=15.0, retries=1)


def marker_key(settings: Settings) -> str:
    """``PREFIX/deployment.json`` in the off-site bucket."""
    base = settings.offsite_s3_prefix
    return f"{base}{'/' if base and not base.endswith('/') else ''}{MARKER_KEY}"


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


def probe(settings: Settings) -> dict[str, Any]:
    """Reach the off-site bucket; return where it is.

    Raises InvalidInput when no off-site store is configured, DependencyDown naming the store
    when it does not answer or refuses the credentials.
    """
    url = endpoint(settings)
    if url is None:
        raise InvalidInput("no off-site store configured: recovering a lost machine needs one "
                           "(the recovery kit names it; or set AUTOGRAPH_OFFSITE_S3_ENDPOINT)")
    try:
        _client(settings).head_bucket(Bucket=settings.offsite_s3_bucket)
    except Exception as exc:  # every boto3 failure is translated and named
        raise _unreachable(settings, exc) from None
    return {"endpoint": url, "bucket": settings.offsite_s3_bucket,
            "prefix": settings.offsite_s3_prefix}


def read_marker(settings: Settings) -> str | None:
    """The deployment id the store's marker names (None: no marker). Raises DependencyDown."""
    try:
        body = _client(settings).get_object(
            Bucket=settings.offsite_s3_bucket, Key=marker_key(settings))["Body"].read()
    except Exception as exc:
        found = _unreachable(settings, exc)
        if isinstance(found, NotFound):
            return None
        raise found from None
    try:
        return str(json.loads(body)["deployment_id"])
    except (ValueError, KeyError, TypeError):
        return None


def write_marker(settings: Settings, deployment_id: str) -> None:
    """Record whose backups the store holds (once; an existing marker is left as it is)."""
    if read_marker(settings) is not None:
        return
    body = json.dumps({"deployment_id": deployment_id}).encode()
    try:
        _client(settings).put_object(Bucket=settings.offsite_s3_bucket,
                                     Key=marker_key(settings), Body=io.BytesIO(body))
    except Exception as exc:
        raise _unreachable(settings, exc) from None


def kit_settings(kit: RecoveryKit, base: Settings) -> Settings:
    """``base`` with the kit's off-site store and key, and the names the restored data
    expects."""
    values: dict[str, Any] = {name: getattr(base, name) for name in type(base).model_fields}
    key = kit.encryption[0] if kit.encryption else None
    values.update({
        "offsite_s3_endpoint": kit.offsite.endpoint,
        "offsite_s3_region": kit.offsite.region,
        "offsite_s3_bucket": kit.offsite.bucket,
        "offsite_s3_prefix": kit.offsite.prefix,
        "offsite_s3_access_key": kit.offsite.access_key,
        "offsite_s3_secret_key": kit.offsite.secret_key,
        "offsite_encryption": key is not None,
        "offsite_key": f"{key.key_id}:{key.key}" if key else None,
        "pg_user": kit.restored_data.pg_user,
        "pg_database": kit.restored_data.pg_database,
        "admin_email": kit.restored_data.admin_email,
        "app_buckets": tuple(kit.restored_data.app_buckets),
    })
    return load_settings(**values)


def save_offsite(settings: Settings) -> Path:
    """Write the settings' off-site store into ``HOME/secrets/offsite.json`` (0600)."""
    values: dict[str, object] = {}
    for name in OFFSITE_FIELDS:
        value = getattr(settings, name)
        values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
    path = settings.secrets_dir / SAVED_OFFSITE
    temporary = path.with_name(f".{SAVED_OFFSITE}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)
    os.replace(temporary, path)
    return path
