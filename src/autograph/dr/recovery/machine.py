"""Before ``dr recover --scenario machine`` runs its steps: a bare home made ready from the kit.

Order matters: every check that can refuse (kit of another deployment, home of another
deployment, off-site store down or refusing the kit's credentials) runs before the first file is
written, so a refused kit changes nothing. Then the kit's secrets are written into the home and
the settings carry the kit's off-site store; the recovery's own steps (infrastructure,
database from the newest off-site base backup and WAL, buckets, services, verify) follow.
"""

from __future__ import annotations

from pydantic import BaseModel

from autograph.config import Settings
from autograph.dr.kit.check import install_kit
from autograph.dr.kit.document import RecoveryKit
from autograph.dr.kit.offsite import (
    endpoint,
    kit_settings,
    probe,
    read_marker,
)
from autograph.errors import InvalidInput


class Prepared(BaseModel):
    """What preparing the home did."""

    endpoint: str
    deployment_id: str
    secrets_written: list[str]


def prepare_machine(kit: RecoveryKit, base: Settings) -> tuple[Settings, Prepared]:
    """Check the kit against the off-site store and the home, then install it.

    Returns the settings to recover with. Raises InvalidInput (kit or home of another
    deployment), DependencyDown (the off-site store, named, does not answer or refuses the
    kit's credentials); nothing is written when it raises.
    """
    settings = kit_settings(kit, base)
    probe(settings)
    marked = read_marker(settings)
    if marked is not None and marked != kit.deployment_id:
        raise InvalidInput(f"the kit is for deployment {kit.deployment_id}, but the off-site "
                           f"store at {endpoint(settings)} holds deployment {marked}'s "
                           "backups: nothing changed")
    written = install_kit(kit, settings)
    return settings, Prepared(endpoint=str(endpoint(settings)),
                              deployment_id=kit.deployment_id, secrets_written=written)
