"""User-facing errors: one hierarchy, translated once at each edge (CLI exit code, HTTP status)."""

from __future__ import annotations


class AutographError(Exception):
    """An error whose message is safe to show to an operator.

    ``http_status`` is what the admin API answers; ``exit_code`` is what the CLI exits with.
    """

    http_status: int = 500
    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(AutographError):
    """A setting is invalid (bad port, unwritable folder, …)."""

    http_status = 500
    exit_code = 2


class InvalidInput(AutographError):
    """A request or command argument is malformed."""

    http_status = 400
    exit_code = 2


class NotFound(AutographError):
    """The named thing (backup, job, component) does not exist."""

    http_status = 404
    exit_code = 3


class Conflict(AutographError):
    """A conflicting operation is running, or the target already exists."""

    http_status = 409
    exit_code = 4


class DependencyDown(AutographError):
    """A server we need (PostgreSQL, Redis, S3) is unreachable."""

    http_status = 503
    exit_code = 5


class OperationFailed(AutographError):
    """A backup, restore, verification or stack operation failed; the message says which step."""

    http_status = 500
    exit_code = 6


class IntegrityError(OperationFailed):
    """An artifact does not match its manifest (checksum, row counts, object digests)."""

    http_status = 422
    exit_code = 7


class KeyUnavailable(ConfigError):
    """Encrypted backups need a key this machine does not hold (the message names its id)."""

    http_status = 500
    exit_code = 2


class InsufficientSpace(OperationFailed):
    """A scratch restore would bring free disk under the backup-storage threshold."""

    http_status = 507
    exit_code = 8
