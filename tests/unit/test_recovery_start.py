"""The order a recovery starts components in: each once what it depends on is healthy, the
infrastructure before any service, and no wait for a whole priority tier."""

from __future__ import annotations

from pathlib import Path

from autograph.config import Settings
from autograph.dr.recovery.start import waits_for
from autograph.secrets import Credentials
from autograph.stack.components import Component, build_components


def _components(tmp_path: Path) -> dict[str, Component]:
    settings = Settings(home_dir=tmp_path)
    creds = Credentials("pg", "redis", "s3a", "s3s", "jwt", "b", "c")
    return {c.name: c for c in build_components(settings, creds)}


def test_services_wait_only_for_their_own_dependencies(tmp_path: Path) -> None:
    found = _components(tmp_path)
    services = [c for c in found.values() if c.kind == "service"]
    assert {"gateway", "svg", "frontend"} <= {c.name for c in services}
    assert waits_for(found["svg"], services) == []  # Redis only: healthy before services
    assert waits_for(found["gateway"], services) == []
    assert waits_for(found["frontend"], services) == ["gateway"]
    assert waits_for(found["ai"], services) == ["diagram"]
    assert found["svg"].priority > found["gateway"].priority  # not held for the tier above


def test_a_dependency_already_running_is_not_waited_for(tmp_path: Path) -> None:
    found = _components(tmp_path)
    assert waits_for(found["frontend"], [found["frontend"], found["svg"]]) == []


def test_infrastructure_comes_before_any_service_started_with_it(tmp_path: Path) -> None:
    found = _components(tmp_path)
    starting = [found["postgres"], found["redis"], found["walstream"], found["svg"]]
    assert waits_for(found["svg"], starting) == ["postgres", "redis", "walstream"]
    assert waits_for(found["walstream"], starting) == ["postgres"]
    assert waits_for(found["redis"], starting) == []
