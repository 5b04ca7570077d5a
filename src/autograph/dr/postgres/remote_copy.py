"""The S3 side of a database backup, run beside ``pg_dump`` instead of before it.

Before the dump could start, a backup used to check its name in the S3 tier, list that tier for
files of interrupted backups and their unfinished uploads, and (in a fresh ``autograph``
process) build the boto3 client for all that: a second or more on a loaded machine, every time.
Here a thread does those steps while the dump runs, then follows the artifact to S3 as it grows
(:class:`FollowUpload`). The local tier's checks still come first, so a name taken locally is
refused before any work; a name taken only in S3 (or off-site) is refused when the dump ends
(nothing is committed then).
"""

from __future__ import annotations

import contextlib
import threading

from autograph.dr.catalog import Catalog
from autograph.dr.storage.follow import FollowUpload
from autograph.dr.storage.local import LocalWriter
from autograph.errors import AutographError, Conflict

REMOTE_TIERS = ("s3", "offsite")  # checked and cleaned here, beside the dump


class RemoteCopy:
    """Check the name in S3, clean the tier, then copy the artifact being written in ``sink``.

    ``attached()`` (before the sink is closed) waits for the checks and raises Conflict;
    ``finish(sha256)`` returns None when the S3 copy is complete and matches, else why not;
    ``cancel()`` abandons it.
    """

    def __init__(self, catalog: Catalog, name: str, sink: LocalWriter) -> None:
        self._catalog = catalog
        self._name = name
        self._sink = sink
        self._mirror: FollowUpload | None = None
        self._conflict: Conflict | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="s3-side", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._catalog.validate_new(self._name, tiers=REMOTE_TIERS)
        except Conflict as exc:
            self._conflict = exc
            return
        try:
            with contextlib.suppress(AutographError):  # an unreachable tier: the copy says so
                self._catalog.clean_incomplete(tiers=REMOTE_TIERS)
            self._mirror = self._catalog.follow_upload(self._sink)
        except Exception as exc:  # reported as the missing copy's reason, never raised
            self._error = f"S3 copy not started ({type(exc).__name__}: {exc})"

    @property
    def conflicted(self) -> bool:
        """Whether the name was found taken in S3 (those files belong to that backup)."""
        return self._conflict is not None

    def attached(self) -> None:
        """Wait until the copy follows the artifact (call while it is still being written)."""
        self._thread.join()
        if self._conflict is not None:
            raise self._conflict

    def finish(self, sha256: str) -> str | None:
        """Wait for the whole copy; None when it matches ``sha256``, else why not."""
        self._thread.join()
        if self._mirror is None:
            return self._error or "upload disabled"
        return self._mirror.finish(sha256)

    def cancel(self) -> None:
        """Abandon the copy (the multipart upload is aborted, nothing appears in S3)."""
        self._thread.join()
        if self._mirror is not None:
            self._mirror.cancel()
