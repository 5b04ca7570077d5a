"""Test support: a second real S3 server (SeaweedFS, own ports and folder) as the off-site store.

It can be killed and started again on the same folder and ports, to test an off-site outage.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autograph.config import Settings
from autograph.s3.boto import ensure_buckets, make_client
from autograph.secrets import Credentials
from autograph.stack import infra
from stackutil import free_port_block, make_home, remove_home, stack_settings


class OffsiteServer:
    """A SeaweedFS S3 server on free ports with its own identities file."""

    def __init__(self, home: Path) -> None:
        self.settings: Settings = stack_settings(home, s3_port=free_port_block(8))
        self.access_key = "offsite" + secrets.token_hex(4)
        self.secret_key = secrets.token_urlsafe(24)
        self.creds = Credentials("", "", self.access_key, self.secret_key, "", "", "")
        self.process: subprocess.Popen[bytes] | None = None
        self.log = home / "offsite-s3.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.settings.s3_port}"

    def client(self, **options: object) -> object:
        return make_client(self.endpoint, self.access_key, self.secret_key, retries=1,
                           connect_timeout=1.0, **options)  # type: ignore[arg-type]

    def start(self, timeout: float = 150.0) -> None:
        """Start (or restart on the same folder) and wait until S3 answers."""
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        infra.prepare_s3(self.settings, self.creds)
        command = infra.s3_command(self.settings)
        assert command is not None
        command = tuple(a.replace("-master.volumeSizeLimitMB=512", "-master.volumeSizeLimitMB=64")
                        for a in command)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log,
                                            start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                ensure_buckets(self.client(), ["autograph-offsite"])
                return
            except Exception:
                if time.monotonic() > deadline:
                    tail = self.log.read_bytes()[-1500:].decode(errors="replace")
                    raise AssertionError(f"off-site S3 server did not answer: {tail}") from None
                time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL the whole server (an outage); its data folder stays."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None
        for port in range(self.settings.s3_port, self.settings.s3_port + 8):
            for path in Path("/tmp").glob(f"*{port}*.sock"):
                path.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        """The AUTOGRAPH_OFFSITE_* settings pointing at this server."""
        return {"AUTOGRAPH_OFFSITE_S3_ENDPOINT": self.endpoint,
                "AUTOGRAPH_OFFSITE_S3_ACCESS_KEY": self.access_key,
                "AUTOGRAPH_OFFSITE_S3_SECRET_KEY": self.secret_key}

    def overrides(self) -> dict[str, object]:
        """The same, as Settings keyword arguments."""
        return {"offsite_s3_endpoint": self.endpoint, "offsite_s3_access_key": self.access_key,
                "offsite_s3_secret_key": self.secret_key}


@pytest.fixture(scope="session")
def offsite_server() -> Iterator[OffsiteServer]:
    """A second S3 server for the whole session, playing the off-site store."""
    home = make_home("autograph-offsite-")
    server = OffsiteServer(home)
    try:
        server.start()
        yield server
    finally:
        server.kill()
        remove_home(home)
