"""Stacks on free ports (sandboxes, test stacks) pick ports the kernel never hands out to an
outgoing connection: a port free at the check could otherwise be taken before the bind."""

from __future__ import annotations

from pathlib import Path

from autograph.dr.drill.sandbox import _free_ports
from autograph.stack.health import private_port_range


def test_the_range_stays_out_of_the_kernels_ephemeral_ports() -> None:
    low, high = (int(v) for v in
                 Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = private_port_range()
    assert len(ports) >= 2000
    assert ports.stop <= low or ports.start > high


def test_a_sandbox_gets_its_ports_from_that_range() -> None:
    singles, block = _free_ports(set(), 12, 8)
    ports = private_port_range()
    assert len(set(singles)) == 12
    assert all(p in ports for p in [*singles, *range(block, block + 8)])
