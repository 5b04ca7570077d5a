"""The off-site tier: a BackupStore on its own S3 server, encrypting everything it is sent.

``OffsiteStore`` wraps another store (an :class:`S3Store` on the off-site server) and passes the
same contract as every backend: keys, sizes and sha256 are those of the *plaintext* (so the
catalog compares them with the manifest as for any tier), while the inner store holds the
ciphertext of :mod:`autograph.dr.storage.crypto` and checks it on upload (Content-MD5 per part).
``ciphertext_sha256`` of a writer is the digest of what was stored, recorded in the off-site
manifest so the copy can be checked without the key (:meth:`OffsiteStore.raw_sha256`).

Layout inside ``AUTOGRAPH_OFFSITE_S3_BUCKET``, under ``AUTOGRAPH_OFFSITE_S3_PREFIX``:
``database/``, ``base/``, ``minio/``, ``snapshots/index/``, ``snapshots/blobs/`` and
``wal/<system identifier>/``, each holding the same keys as its local folder.

Public API (used by the catalog, the shippers and the recovery kit):
``offsite_enabled(settings)``, ``offsite_credentials(settings)``, ``offsite_client(settings)``,
``offsite_key(settings)``, ``open_offsite(settings, area)``, ``OffsiteStore``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from autograph.config import Settings
from autograph.dr.storage import (
    BackupStore,
    ByteProgress,
    HashedWriter,
    HashingCounter,
    StoredObject,
    fill,
    sha256_of,
)
from autograph.errors import ConfigError

if TYPE_CHECKING:
    from autograph.dr.storage.crypto import EncryptionKey

# autograph.dr.storage.crypto (and so ``cryptography``, ~10 ms of every backup command's
# start-up) is imported inside the functions that encrypt or decrypt: only a configured
# off-site tier with encryption on ever needs it.

AREAS = ("database", "base", "minio", "snapshots/index", "snapshots/blobs")
"""The off-site folders of the catalog kinds and the snapshot store (WAL: ``wal/<sysid>``)."""


class OffsiteWriter(HashedWriter):
    """A sink that encrypts into the inner store's writer; plaintext hashed, ciphertext too."""

    def __init__(self, inner: BackupStore, key: str, enc: EncryptionKey | None) -> None:
        self._inner_cm = inner.writer(key)
        self._sink: Any = None
        if enc is not None:
            from autograph.dr.storage.crypto import Encryptor

            self._enc: Any = Encryptor(enc)
        else:
            self._enc = None
        self._counter = HashingCounter()  # of the plaintext
        self.ciphertext_sha256: str | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._counter.update(data)
        out = self._enc.update(data) if self._enc is not None else data
        if out:
            self._sink.write(out)
        return len(data)

    def __enter__(self) -> OffsiteWriter:
        self._sink = self._inner_cm.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool | None:
        if exc_type is None:
            try:
                if self._enc is not None:
                    self._sink.write(self._enc.finish())
                self.ciphertext_sha256 = self._sink.hexdigest()
            except BaseException as failure:
                self._inner_cm.__exit__(type(failure), failure, failure.__traceback__)
                raise
        return self._inner_cm.__exit__(exc_type, exc, tb)


class OffsiteStore:
    """A BackupStore holding encrypted copies (or plain ones with encryption off)."""

    tier = "offsite"

    def __init__(self, inner: BackupStore, key: EncryptionKey | None,
                 keys: dict[str, EncryptionKey] | None = None) -> None:
        """``key`` encrypts new copies (None: store plain); ``keys`` (default: ``key``)
        decrypt, by id, so copies made under an older key stay readable."""
        self.inner = inner
        self.key = key
        self.keys = dict(keys or {})
        if key is not None:
            self.keys.setdefault(key.key_id, key)

    @property
    def key_id(self) -> str | None:
        """The id of the key new copies are encrypted with (None: encryption off)."""
        return self.key.key_id if self.key is not None else None

    def describe(self) -> str:
        how = f"encrypted, key {self.key_id}" if self.key is not None else "not encrypted"
        return f"{self.inner.describe()} (off-site, {how})"

    def writer(self, key: str) -> OffsiteWriter:
        return OffsiteWriter(self.inner, key, self.key)

    def put(self, key: str, source: Path | BinaryIO, expected_sha256: str | None = None,
            progress: ByteProgress = None) -> StoredObject:
        sink = self.writer(key)
        with sink:
            fill(sink, key, source, expected_sha256, progress)
        return StoredObject(key, sink.size, None, sink.hexdigest())

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        """The plaintext of ``key``, authenticated chunk by chunk as it is read.

        Raises NotFound, KeyUnavailable (naming the key id), IntegrityError (damaged copy).
        """
        with self.inner.open(key) as raw:
            if self.key is None and not self.keys:
                yield raw
            else:
                from autograph.dr.storage.crypto import DecryptingReader

                where = f"{self.inner.describe()}{key}"
                yield cast(BinaryIO, DecryptingReader(raw, self.keys, where))

    @contextmanager
    def open_raw(self, key: str) -> Iterator[BinaryIO]:
        """The stored bytes (ciphertext) of ``key``, for checks that need no key."""
        with self.inner.open(key) as raw:
            yield raw

    def raw_sha256(self, key: str) -> str:
        """sha256 of the stored (encrypted) bytes: compared with the manifest's record."""
        with self.open_raw(key) as raw:
            return sha256_of(raw)[0]

    def _plain(self, item: StoredObject) -> StoredObject:
        if self.key is None and not self.keys:
            return item
        from autograph.dr.storage.crypto import plaintext_size

        return replace(item, size=plaintext_size(item.size), sha256=None)

    def list(self, prefix: str = "") -> list[StoredObject]:
        return [self._plain(item) for item in self.inner.list(prefix)]

    def stat(self, key: str) -> StoredObject:
        return self._plain(self.inner.stat(key))

    def delete(self, key: str) -> None:
        self.inner.delete(key)


# Settings -> stores ------------------------------------------------------------------------------

def offsite_enabled(settings: Settings) -> bool:
    """True when an off-site S3 endpoint is configured."""
    return bool(settings.offsite_s3_endpoint)


def _secret(value: object, path: Path, setting: str) -> str:
    getter = getattr(value, "get_secret_value", None)
    if getter is not None:
        return str(getter())
    if path.exists():
        return path.read_text().strip()
    raise ConfigError(f"off-site tier: set {setting} or write the value to {path} (mode 0600)")


def offsite_credentials(settings: Settings) -> tuple[str, str]:
    """(access key, secret key) of the off-site server: the settings, else HOME/secrets files.

    Raises ConfigError naming what to set. Never derived from the application's credentials:
    the off-site store is another failure domain.
    """
    folder = settings.secrets_dir
    return (_secret(settings.offsite_s3_access_key, folder / "offsite-s3-access-key",
                    "AUTOGRAPH_OFFSITE_S3_ACCESS_KEY"),
            _secret(settings.offsite_s3_secret_key, folder / "offsite-s3-secret-key",
                    "AUTOGRAPH_OFFSITE_S3_SECRET_KEY"))


def offsite_key(settings: Settings) -> EncryptionKey | None:
    """The off-site encryption key (created at first use); None when encryption is off."""
    if not settings.offsite_encryption:
        return None
    from autograph.dr.storage.crypto import load_or_create_key

    configured = settings.offsite_key.get_secret_value() if settings.offsite_key else None
    return load_or_create_key(settings.secrets_dir, configured)


def offsite_client(settings: Settings, **options: Any) -> Any:
    """A boto3 client for the off-site server (short timeouts: an outage must not stall us)."""
    from autograph.s3.boto import make_client

    if not offsite_enabled(settings):
        raise ConfigError("no off-site tier configured (AUTOGRAPH_OFFSITE_S3_ENDPOINT)")
    access, secret = offsite_credentials(settings)
    options = {"connect_timeout": 3.0, "read_timeout": 30.0, "retries": 2, **options}
    options.setdefault("transfers", False)  # S3 API calls only (see make_client)
    return make_client(str(settings.offsite_s3_endpoint), access, secret,
                       settings.offsite_s3_region, **options)


def area_prefix(settings: Settings, area: str) -> str:
    """The key prefix of one off-site folder (``PREFIX/database/`` …)."""
    base = settings.offsite_s3_prefix
    if base and not base.endswith("/"):
        base += "/"
    return f"{base}{area}/"


def open_offsite(settings: Settings, area: str, client: Any = None) -> OffsiteStore | None:
    """The off-site store of ``area`` (see :data:`AREAS`, or ``wal/<sysid>``); None when off.

    Raises ConfigError when credentials or the key are missing or malformed.
    """
    from autograph.dr.storage.s3 import S3Store

    if not offsite_enabled(settings):
        return None
    client = client if client is not None else offsite_client(settings)
    inner = S3Store(client, settings.offsite_s3_bucket, area_prefix(settings, area))
    return OffsiteStore(inner, offsite_key(settings))


def ensure_offsite_bucket(settings: Settings, client: Any = None) -> bool:
    """Create the off-site bucket if it does not exist (best effort); True when it exists."""
    from autograph.s3.boto import ensure_buckets

    client = client if client is not None else offsite_client(settings)
    with contextlib.suppress(Exception):
        ensure_buckets(client, [settings.offsite_s3_bucket])
        return True
    return False
