"""The recovery kit against a real S3 server standing in for the off-site store: export (0600,
sealed), verify (what it can restore), and each bad input refused with a one-line error and
nothing changed: wrong passphrase, truncated kit, kit of another deployment, home of another
deployment, off-site store down."""

from __future__ import annotations

import json
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.config import Settings, load_settings
from autograph.dr.kit.check import build_kit, install_kit, verify_kit
from autograph.dr.kit.document import KitKey, read_kit, seal, write_kit
from autograph.dr.postgres import DatabaseBackupManager
from autograph.dr.recovery.machine import prepare_machine
from autograph.dr.storage.crypto import new_key
from autograph.dr.storage.offsite import ensure_offsite_bucket
from autograph.errors import AutographError, DependencyDown, InvalidInput
from autograph.saved_offsite import SAVED_OFFSITE
from autograph.stack.lifecycle import Stack
from dbbackups import isolated_settings
from offsiteutil import OffsiteServer
from stackutil import free_port_block, settings_env

PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def deployment(infra_stack: Stack, offsite_server: OffsiteServer,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A deployment whose off-site tier is the session's second S3 server (under a prefix of
    its own), with one database dump shipped there."""
    tmp = tmp_path_factory.mktemp("kit")
    with isolated_settings(infra_stack, tmp) as isolated:
        settings = isolated.model_copy(update={
            "home": tmp / "home", "offsite_s3_endpoint": offsite_server.endpoint,
            "offsite_s3_access_key": SecretStr(offsite_server.access_key),
            "offsite_s3_secret_key": SecretStr(offsite_server.secret_key),
            "offsite_s3_prefix": f"kit-{secrets.token_hex(4)}/"})
        (tmp / "home").mkdir()
        ensure_offsite_bucket(settings)
        entry = DatabaseBackupManager(settings, infra_stack.creds).create("kit_test_dump")
        assert "offsite" in entry.locations
        yield settings


@pytest.fixture(scope="module")
def kit_file(deployment: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kitfile") / "kit.json"
    write_kit(path, seal(build_kit(deployment), PASSPHRASE))
    return path


def test_export_is_sealed_and_private_and_verify_says_what_it_restores(
        deployment: Settings, kit_file: Path) -> None:
    assert stat.S_IMODE(kit_file.stat().st_mode) == 0o600
    text = kit_file.read_text()
    assert json.loads(text)["kind"] == "autograph-recovery-kit-sealed"
    key = (deployment.secrets_dir / "offsite-key").read_text().strip()
    assert key.partition(":")[2] not in text and deployment.offsite_s3_prefix not in text
    kit = read_kit(kit_file, PASSPHRASE)
    assert kit.encryption[0].key_id == key.partition(":")[0]
    assert kit.secrets["offsite-key"] == key and kit.secrets["deployment-id"]
    assert kit.offsite.endpoint == deployment.offsite_s3_endpoint
    assert key.partition(":")[2] not in repr(kit)
    found = verify_kit(kit, deployment)
    assert found.database.newest == "kit_test_dump" and found.database.count == 1
    assert found.manifest_read == "kit_test_dump" and found.restorable_to is not None
    # The kit's key is what decrypts the store: another key cannot read a manifest.
    wrong = new_key()
    other = kit.model_copy(update={"encryption": [KitKey(
        key_id=wrong.key_id, key=wrong.export().partition(":")[2])]})
    with pytest.raises(AutographError) as refused:
        verify_kit(other, deployment)
    assert kit.encryption[0].key_id in refused.value.message, refused.value.message


def test_cli_export_warns_and_verify_reports(deployment: Settings, tmp_path: Path) -> None:
    env = {**settings_env(deployment), "AUTOGRAPH_KIT_PASSPHRASE": PASSPHRASE}
    out = tmp_path / "cli-kit.json"
    done = CliRunner().invoke(app, ["dr", "kit", "export", "--out", str(out)], env=env)
    assert done.exit_code == 0, done.output
    assert "whoever holds this kit" in done.output and "unreadable" in done.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    shown = CliRunner().invoke(app, ["dr", "kit", "verify", str(out), "--json"], env=env)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["database"]["newest"] == "kit_test_dump"


@pytest.mark.parametrize("damage", ["truncated", "wrong passphrase", "not json", "altered"])
def test_a_bad_kit_is_one_line_and_exit_2(deployment: Settings, kit_file: Path,
                                          tmp_path: Path, damage: str) -> None:
    bad = tmp_path / "bad.json"
    data = kit_file.read_bytes()
    passphrase = PASSPHRASE
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "not json":
        bad.write_bytes(b"hello")
    elif damage == "altered":
        doc = json.loads(data)
        doc["deployment_id"] = "someone-else"
        bad.write_text(json.dumps(doc))
    else:
        bad.write_bytes(data)
        passphrase = "not the passphrase"
    env = {**settings_env(deployment), "AUTOGRAPH_KIT_PASSPHRASE": passphrase}
    done = CliRunner().invoke(app, ["dr", "kit", "verify", str(bad)], env=env)
    assert done.exit_code == 2
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.output
    assert "Traceback" not in done.output
    expected = {"truncated": "truncated or damaged", "not json": "truncated or damaged",
                "altered": "wrong passphrase", "wrong passphrase": "wrong passphrase"}[damage]
    assert expected in lines[0]


def test_a_kit_of_another_deployment_changes_nothing(deployment: Settings, kit_file: Path,
                                                     tmp_path: Path) -> None:
    kit = read_kit(kit_file, PASSPHRASE).model_copy(update={"deployment_id": "other-one"})
    with pytest.raises(InvalidInput, match="holds deployment"):
        verify_kit(kit, deployment)
    bare = deployment.model_copy(update={"home": tmp_path / "bare"})
    with pytest.raises(InvalidInput, match="holds deployment"):
        prepare_machine(kit, bare)
    assert not (tmp_path / "bare").exists()


def test_a_home_of_another_deployment_is_left_alone(deployment: Settings, kit_file: Path,
                                                    tmp_path: Path) -> None:
    home = tmp_path / "taken"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "deployment-id").write_text("someone-else\n")
    taken = deployment.model_copy(update={"home": home})
    with pytest.raises(InvalidInput, match="belongs to deployment someone-else"):
        install_kit(read_kit(kit_file, PASSPHRASE), taken)
    assert os.listdir(home / "secrets") == ["deployment-id"]


def test_off_site_store_down_is_named_and_nothing_written(deployment: Settings,
                                                          kit_file: Path,
                                                          tmp_path: Path) -> None:
    kit = read_kit(kit_file, PASSPHRASE)
    dead = f"http://127.0.0.1:{free_port_block()}"
    gone = kit.model_copy(update={"offsite": kit.offsite.model_copy(
        update={"endpoint": dead})})
    bare = deployment.model_copy(update={"home": tmp_path / "bare"})
    with pytest.raises(DependencyDown, match=f"off-site store at {dead}"):
        prepare_machine(gone, bare)
    assert not (tmp_path / "bare").exists()
    with pytest.raises(DependencyDown, match=f"off-site store at {dead}"):
        verify_kit(gone, deployment)
    wrong = kit.model_copy(update={"offsite": kit.offsite.model_copy(
        update={"secret_key": "wrong"})})
    with pytest.raises(DependencyDown, match="refused the credentials"):
        verify_kit(wrong, deployment)


def test_recover_machine_needs_a_kit_and_refuses_a_bad_one_before_writing(
        deployment: Settings, kit_file: Path, tmp_path: Path) -> None:
    bare = tmp_path / "bare"
    env = {**settings_env(deployment), "AUTOGRAPH_HOME": str(bare),
           "AUTOGRAPH_KIT_PASSPHRASE": "not the passphrase"}
    runner = CliRunner()
    missing = runner.invoke(app, ["dr", "recover", "--scenario", "machine", "--yes"], env=env)
    assert missing.exit_code == 2 and "needs --kit FILE" in missing.output
    wrong = runner.invoke(app, ["dr", "recover", "--scenario", "machine", "--kit",
                                str(kit_file), "--yes"], env=env)
    assert wrong.exit_code == 2 and "wrong passphrase" in wrong.output, wrong.output
    assert not (bare / "secrets").exists()


def test_a_machine_prepared_from_the_kit_keeps_its_off_site_store_for_later_starts(
        deployment: Settings, kit_file: Path, tmp_path: Path) -> None:
    """After the machine recovery, a plain start (no AUTOGRAPH_OFFSITE_* in its environment)
    ships to the same off-site store with the same key: the next disaster is covered too."""
    bare = deployment.model_copy(update={"home": tmp_path / "new-machine"})
    settings, prepared = prepare_machine(read_kit(kit_file, PASSPHRASE), bare)
    saved = tmp_path / "new-machine" / "secrets" / SAVED_OFFSITE
    assert SAVED_OFFSITE in prepared.secrets_written
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    later = load_settings(home=tmp_path / "new-machine")
    assert later.offsite_s3_endpoint == deployment.offsite_s3_endpoint
    assert later.offsite_s3_prefix == deployment.offsite_s3_prefix
    assert later.offsite_key is not None and settings.offsite_key is not None
    assert later.offsite_key.get_secret_value() == settings.offsite_key.get_secret_value()
    # What the operator sets explicitly still wins, and an unreadable file is ignored.
    assert load_settings(home=tmp_path / "new-machine",
                         offsite_s3_endpoint=None).offsite_s3_endpoint is None
    saved.write_text("{not json")
    assert load_settings(home=tmp_path / "new-machine").offsite_s3_endpoint is None
