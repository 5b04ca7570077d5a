"""The recovery kit document (sealing, opening, refusing damage) and the WAL chain gap finder:
pure logic, no servers."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from autograph.dr.kit.document import (
    OffsiteStore,
    RecoveryKit,
    RestoredData,
    plain,
    read_kit,
    seal,
    write_kit,
)
from autograph.dr.postgres.private import chain_gap
from autograph.errors import InvalidInput


def _kit() -> RecoveryKit:
    return RecoveryKit(
        deployment_id="d1", created_at=datetime(2026, 12, 1, tzinfo=UTC),
        offsite=OffsiteStore(endpoint="http://127.0.0.1:9", bucket="b", access_key="AK",
                             secret_key="very-secret"),
        secrets={"pg-password": "pw-123"},
        restored_data=RestoredData(pg_user="autograph", pg_database="autograph",
                                   admin_email="a@b.c", app_buckets=["diagrams"]))


def test_sealed_kit_round_trips_and_hides_its_secrets(tmp_path: Path) -> None:
    path = tmp_path / "kit.json"
    write_kit(path, seal(_kit(), "pass phrase"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert "very-secret" not in text and "pw-123" not in text
    assert json.loads(text)["deployment_id"] == "d1"  # the header says whose it is
    assert read_kit(path, "pass phrase") == _kit()
    assert "very-secret" not in repr(read_kit(path, "pass phrase"))


@pytest.mark.parametrize(("damage", "message"), [
    ("wrong passphrase", "wrong passphrase"),
    ("no passphrase", "is encrypted"),
    ("truncated", "truncated or damaged"),
    ("header changed", "wrong passphrase"),
    ("ciphertext changed", "wrong passphrase"),
    ("newer version", "version 2 is not supported"),
    ("missing", "no recovery kit"),
])
def test_damaged_kits_are_refused_with_a_reason(tmp_path: Path, damage: str,
                                               message: str) -> None:
    path = tmp_path / "kit.json"
    data = seal(_kit(), "pass phrase")
    doc = json.loads(data)
    passphrase: str | None = "pass phrase"
    if damage == "wrong passphrase":
        passphrase = "other"
    elif damage == "no passphrase":
        passphrase = None
    elif damage == "truncated":
        data = data[:-40]
    elif damage == "header changed":
        doc["deployment_id"] = "d2"
    elif damage == "ciphertext changed":
        body = doc["ciphertext"]
        doc["ciphertext"] = ("A" if body[0] != "A" else "B") + body[1:]
    elif damage == "newer version":
        doc["kit_version"] = 2
    if damage in ("header changed", "ciphertext changed", "newer version"):
        data = json.dumps(doc).encode()
    if damage != "missing":
        path.write_bytes(data)
    with pytest.raises(InvalidInput, match=message):
        read_kit(path, passphrase)


def test_plain_kit_needs_no_passphrase_and_an_incomplete_one_is_refused(
        tmp_path: Path) -> None:
    path = tmp_path / "kit.json"
    write_kit(path, plain(_kit()))
    assert read_kit(path, None) == _kit()
    doc = json.loads(path.read_text())
    del doc["offsite"]
    path.write_text(json.dumps(doc))
    with pytest.raises(InvalidInput, match="not a complete recovery kit"):
        read_kit(path, None)


@pytest.mark.parametrize(("names", "gap"), [
    ([], None),
    (["000000010000000000000003", "000000010000000000000004"], None),
    (["0000000100000000000000FF", "000000010000000100000000"], None),  # across a log file
    (["000000010000000000000003", "000000010000000000000005"],
     ("000000010000000000000003", "000000010000000000000005")),
    (["000000010000000000000003", "000000020000000000000004"], None),  # next timeline
])
def test_chain_gap(names: list[str], gap: tuple[str, str] | None) -> None:
    assert chain_gap(names) == gap
