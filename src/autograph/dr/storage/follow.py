"""Copying an artifact to another store while it is still being written.

The local artifact is the primary copy; its S3 copy can start as soon as the first bytes are on
disk instead of after the whole dump, without ever slowing the producer down.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from autograph.dr.storage import BackupStore, StoredObject
from autograph.dr.storage.local import LocalWriter
from autograph.errors import AutographError, OperationFailed


class _FollowReader:
    """Reads a file that another thread is still appending to, until told it is complete."""

    def __init__(self, path: Path, done: threading.Event, cancelled: threading.Event) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._done = done
        self._cancelled = cancelled

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._cancelled.is_set():
                raise OperationFailed("upload abandoned: the artifact was not completed")
            finished = self._done.is_set()
            data = self._file.read(size)
            if data or finished:
                return data
            self._done.wait(0.02)

    def close(self) -> None:
        self._file.close()


class FollowUpload:
    """Copies a staged artifact to S3 in a thread, following the file as it grows.

    The producer never waits for S3: a slow upload only lags behind. ``finish(sha256)`` (after
    the artifact is complete) waits for the rest and says whether the copy is good (an S3
    failure is reported, not raised); ``cancel()`` abandons it (the multipart upload is
    aborted, nothing appears under the key).
    """

    def __init__(self, remote: BackupStore, sink: LocalWriter) -> None:
        self._remote = remote
        self._key = sink.final.name
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._reader = _FollowReader(sink.temp, self._done, self._cancelled)
        self._stored: StoredObject | None = None
        self._error: str | None = None
        self._thread = threading.Thread(target=self._run, name="follow-upload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._stored = self._remote.put(self._key, self._reader)  # type: ignore[arg-type]
        except AutographError as exc:
            self._error = exc.message
        except Exception as exc:
            self._error = f"upload failed ({type(exc).__name__})"
        finally:
            self._reader.close()

    def finish(self, sha256: str) -> str | None:
        """Wait for the upload of the complete artifact (whose digest is ``sha256``); return
        None when the S3 copy is complete and matches, else why not (the copy is removed)."""
        self._done.set()
        self._thread.join()
        if self._error is None and self._stored is not None and self._stored.sha256 != sha256:
            with contextlib.suppress(AutographError):
                self._remote.delete(self._key)
            self._error = "the uploaded bytes do not match the local artifact"
        return self._error

    def cancel(self) -> None:
        """Abandon the upload."""
        self._cancelled.set()
        self._thread.join()
