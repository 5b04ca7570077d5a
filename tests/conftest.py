"""Session fixtures: one real stack (PostgreSQL, Redis, S3) on free ports in a temporary home.

Later tests share it; it never touches a developer's running stack on the default ports.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from autograph.stack.lifecycle import Stack
from stackutil import make_home, remove_home, stack_settings


@pytest.fixture(scope="session")
def infra_stack() -> Iterator[Stack]:
    """A running PostgreSQL + Redis + S3 shared by the whole session."""
    home = make_home("autograph-infra-")
    stack = Stack(stack_settings(home))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        remove_home(home)


@pytest.fixture(scope="session")
def app_stack() -> Iterator[Stack]:
    """PostgreSQL, Redis, S3 and every application service (priorities 2 and 3), shared by
    the session (its own home and free ports; webhooks may deliver to loopback only)."""
    home = make_home("autograph-app-")
    stack = Stack(stack_settings(home, services=None, webhook_destinations="loopback"))
    try:
        stack.up()
        yield stack
    finally:
        stack.down()
        remove_home(home)


from offsiteutil import offsite_server  # noqa: E402,F401  (the off-site S3 server fixture)
