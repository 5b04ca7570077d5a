"""The recovery kit as a document: what a bare machine needs besides the off-site store.

A versioned JSON document (``kit_version``): the deployment it belongs to, the off-site store
(endpoint, region, buckets, prefix, credentials), the encryption keys of what is stored there,
the stack's secrets (so the restored data is usable as it was: role and admin passwords, the
break-glass key) and what the restored data expects (database role and name, admin e-mail,
buckets). Whoever holds it can read the backups; without it they are unreadable.

On disk it is sealed with a passphrase by default: scrypt derives a 256-bit key from the
passphrase and a random salt, AES-256-GCM encrypts the document, and the clear header (format,
version, deployment id, KDF parameters) is the authenticated associated data, so nothing in it
can be changed unnoticed. ``cryptography`` does all of it. Files are written 0600.
"""

from __future__ import annotations

import base64
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt
from pydantic import BaseModel, Field, ValidationError

from autograph.errors import InvalidInput

KIT_VERSION = 1
PLAIN = "autograph-recovery-kit"
SEALED = "autograph-recovery-kit-sealed"
SCRYPT = {"n": 2**15, "r": 8, "p": 1}
MAX_KIT_BYTES = 1 << 20


class OffsiteStore(BaseModel):
    """Where the off-site copies are and how to log in."""

    endpoint: str
    region: str = "us-east-1"
    bucket: str
    prefix: str = ""
    access_key: str = Field(repr=False)
    secret_key: str = Field(repr=False)


class KitKey(BaseModel):
    """One encryption key of the off-site copies (base64), by its id (the key id every
    encrypted off-site file names in its header)."""

    key_id: str
    key: str = Field(repr=False)


class RestoredData(BaseModel):
    """What the restored data expects of the stack that runs it."""

    pg_user: str
    pg_database: str
    admin_email: str
    app_buckets: list[str]


class RecoveryKit(BaseModel):
    """The kit (``kit_version`` 1)."""

    kind: Literal["autograph-recovery-kit"] = "autograph-recovery-kit"
    kit_version: Literal[1] = 1
    deployment_id: str
    created_at: datetime
    offsite: OffsiteStore
    encryption: list[KitKey] = Field(default_factory=list)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False,
                                    description="HOME/secrets file name -> content")
    restored_data: RestoredData


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _aad(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":")).encode()


def seal(kit: RecoveryKit, passphrase: str) -> bytes:
    """The kit encrypted with ``passphrase`` (scrypt + AES-256-GCM), as JSON bytes."""
    if not passphrase:
        raise InvalidInput("the kit passphrase is empty")
    salt, nonce = os.urandom(16), os.urandom(12)
    header = {"kind": SEALED, "kit_version": KIT_VERSION, "deployment_id": kit.deployment_id,
              "kdf": {"name": "scrypt", **SCRYPT, "salt": _b64(salt)}, "cipher": "AES-256-GCM"}
    key = Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase.encode())
    body = AESGCM(key).encrypt(nonce, kit.model_dump_json().encode(), _aad(header))
    return json.dumps({**header, "nonce": _b64(nonce), "ciphertext": _b64(body)},
                      indent=1).encode() + b"\n"


def plain(kit: RecoveryKit) -> bytes:
    """The kit as readable JSON (for a store that is itself encrypted, e.g. a vault)."""
    return kit.model_dump_json(indent=1).encode() + b"\n"


def write_kit(path: Path, data: bytes) -> None:
    """Write the kit at ``path`` with mode 0600 (replacing a file there atomically)."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def header_of(path: Path) -> dict[str, Any]:
    """The kit file's JSON, checked to be a kit of a known version (sealed or plain).

    Raises InvalidInput with a one-line reason (missing, unreadable, truncated, not a kit).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"no recovery kit at {path}") from None
    except OSError as exc:
        raise InvalidInput(f"cannot read the recovery kit {path}: {exc.strerror}") from None
    if len(raw) > MAX_KIT_BYTES:
        raise InvalidInput(f"{path} is not a recovery kit (too large)")
    try:
        found = json.loads(raw)
    except ValueError:
        raise InvalidInput(f"{path} is not a recovery kit (truncated or damaged: not "
                           "complete JSON)") from None
    if not isinstance(found, dict) or found.get("kind") not in (PLAIN, SEALED):
        raise InvalidInput(f"{path} is not a recovery kit")
    if found.get("kit_version") != KIT_VERSION:
        raise InvalidInput(f"{path}: recovery kit version {found.get('kit_version')!r} is not "
                           f"supported (this version reads {KIT_VERSION})")
    return found


def is_sealed(path: Path) -> bool:
    """True when the kit at ``path`` needs a passphrase."""
    return bool(header_of(path)["kind"] == SEALED)


def read_kit(path: Path, passphrase: str | None) -> RecoveryKit:
    """Open the kit at ``path`` (decrypting it with ``passphrase`` when sealed).

    Raises InvalidInput: missing file, truncated or damaged kit, unknown version, a sealed kit
    without a passphrase, a wrong passphrase (or an altered kit: GCM cannot tell them apart).
    """
    found = header_of(path)
    if found["kind"] == SEALED:
        found = _unseal(path, found, passphrase)
    try:
        return RecoveryKit.model_validate(found)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise InvalidInput(f"{path} is not a complete recovery kit ({where}: "
                           f"{exc.errors()[0]['msg']})") from None


def _unseal(path: Path, found: dict[str, Any], passphrase: str | None) -> dict[str, Any]:
    if not passphrase:
        raise InvalidInput(f"the recovery kit {path} is encrypted: give its passphrase "
                           "(AUTOGRAPH_KIT_PASSPHRASE, or type it when asked)")
    try:
        kdf = found["kdf"]
        header = {k: found[k] for k in ("kind", "kit_version", "deployment_id", "kdf",
                                        "cipher")}
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(found["nonce"], validate=True)
        body = base64.b64decode(found["ciphertext"], validate=True)
        if kdf.get("name") != "scrypt" or found["cipher"] != "AES-256-GCM":
            raise ValueError("unknown algorithm")
        key = Scrypt(salt=salt, length=32, n=int(kdf["n"]), r=int(kdf["r"]),
                     p=int(kdf["p"])).derive(passphrase.encode())
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(f"{path} is not a recovery kit (truncated or damaged)") from None
    try:
        clear = AESGCM(key).decrypt(nonce, body, _aad(header))
    except InvalidTag:
        raise InvalidInput(f"wrong passphrase for the recovery kit {path} (or the kit was "
                           "altered)") from None
    try:
        opened = json.loads(clear)
    except ValueError:
        raise InvalidInput(f"{path} is not a recovery kit (damaged inside)") from None
    if not isinstance(opened, dict) or opened.get("deployment_id") != found["deployment_id"]:
        raise InvalidInput(f"{path} is not a recovery kit (its header and body disagree)")
    return opened
