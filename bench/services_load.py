"""Load on the application API: N concurrent clients creating and reading diagrams.

Each client registers its own user, logs in, then loops: create a diagram (a ~2 KB canvas,
object in S3 + rows in PostgreSQL) and read it back (rows + object, sha256 checked), for
``--seconds``. Prints requests/s and p50/p99 latency per operation, through the gateway and,
as the baseline, straight to the diagram service (the difference is the gateway's cost).

    python bench/services_load.py [--clients 16] [--seconds 20] [--temp-stack] [--json]

Without ``--temp-stack`` it targets the stack described by the AUTOGRAPH_* settings (it
writes users and diagrams there). The load generator runs on the same machine as the
servers and competes with them for CPU: the figures are a floor, not a capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from autograph.config import Settings, load_settings
from autograph.stack.lifecycle import Stack

PASSWORD = "Bench-Pass-2024!"


@dataclass
class Run:
    """The latencies (seconds) per operation and the errors of one load run."""

    target: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wall_seconds: float = 0.0

    def summary(self) -> dict[str, object]:
        """Requests/s and p50/p99 in milliseconds, per operation and overall."""
        rows: dict[str, object] = {}
        every = [x for values in self.latencies.values() for x in values]
        for name, values in [*sorted(self.latencies.items()), ("all", every)]:
            if not values:
                continue
            ordered = sorted(values)
            rows[name] = {
                "requests": len(values),
                "req_per_s": round(len(values) / self.wall_seconds, 1),
                "p50_ms": round(statistics.median(ordered) * 1000, 1),
                "p99_ms": round(ordered[min(len(ordered) - 1,
                                            int(len(ordered) * 0.99))] * 1000, 1),
            }
        return {"target": self.target, "seconds": round(self.wall_seconds, 1),
                "errors": dict(self.errors), "operations": rows}


def canvas(rnd: random.Random) -> dict[str, object]:
    """A ~2 KB diagram: 12 nodes and their edges."""
    nodes = [{"id": f"n{i}", "type": rnd.choice(["rect", "ellipse", "text"]),
              "x": rnd.randrange(2000), "y": rnd.randrange(2000),
              "label": f"node {rnd.randrange(10**6)}"} for i in range(12)]
    edges = [{"from": f"n{i}", "to": f"n{(i + 1) % 12}"} for i in range(12)]
    return {"nodes": nodes, "edges": edges}


async def login(auth_url: str) -> str:
    """Register a fresh user through ``auth_url`` and return a session token."""
    email = f"bench-{uuid.uuid4().hex[:12]}@example.com"
    async with httpx.AsyncClient(base_url=auth_url, timeout=60, trust_env=False) as client:
        registered = await client.post("/api/auth/register",
                                       json={"email": email, "password": PASSWORD})
        registered.raise_for_status()
        answer = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        answer.raise_for_status()
        return str(answer.json()["access_token"])


async def client_loop(client: httpx.AsyncClient, token: str, deadline: float, run: Run,
                      seed: int) -> None:
    """Create then read diagrams until ``deadline``."""
    rnd = random.Random(seed)
    headers = {"Authorization": f"Bearer {token}"}

    async def timed(name: str, method: str, path: str, **kwargs: object) -> httpx.Response:
        started = time.perf_counter()
        answer = await client.request(method, path, headers=headers, **kwargs)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - started
        if answer.status_code >= 400:
            run.errors[f"{name} HTTP {answer.status_code}"] += 1
        else:
            run.latencies[name].append(elapsed)
        return answer

    while time.monotonic() < deadline:
        created = await timed("create", "POST", "/api/diagrams",
                              json={"name": f"bench {rnd.randrange(10**6)}",
                                    "canvas": canvas(rnd)})
        if created.status_code == 201:
            await timed("read", "GET", f"/api/diagrams/{created.json()['id']}")


async def load(target: str, base_url: str, auth_url: str, clients: int, seconds: float) -> Run:
    """Run ``clients`` concurrent loops against ``base_url`` for ``seconds``."""
    tokens = await asyncio.gather(*(login(auth_url) for _ in range(clients)))
    run = Run(target)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=60, limits=limits,
                                 trust_env=False) as client:
        started = time.monotonic()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(client, token, deadline, run, seed)
                               for seed, token in enumerate(tokens)))
        run.wall_seconds = time.monotonic() - started
    return run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def temp_settings(home: Path) -> Settings:
    """Settings for a throw-away stack: own home, free ports, the three core services."""
    ports = {f"{name}_port": _free_port() for name in (
        "pg", "redis", "gateway", "auth", "diagram", "ai", "collaboration", "export", "git",
        "integrations", "svg", "frontend")}
    with socket.socket() as probe:  # the S3 server needs a block of 8 ports
        probe.bind(("127.0.0.1", 0))
        s3_port = 30000 + probe.getsockname()[1] % 20000
    return load_settings(home=home, services=("gateway", "auth", "diagram"),
                         scheduler_enabled=False, s3_port=s3_port, **ports)


def print_table(result: dict[str, object]) -> None:
    print(f"\n{result['target']}  ({result['seconds']} s, errors: {result['errors'] or 'none'})")
    print(f"  {'operation':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name, row in result["operations"].items():  # type: ignore[attr-defined]
        print(f"  {name:<10} {row['requests']:>9} {row['req_per_s']:>8} "
              f"{row['p50_ms']:>8} {row['p99_ms']:>8}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--temp-stack", action="store_true",
                        help="start a throw-away stack in a temporary home (removed after)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="skip the direct-to-diagram-service baseline")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="autograph-bench-")) if args.temp_stack else None
    stack = None
    try:
        if home is not None:
            home.chmod(0o755)
            stack = Stack(temp_settings(home))
            stack.up()
        settings = stack.settings if stack else load_settings()
        gateway = settings.service_url("gateway")
        runs = [asyncio.run(load("gateway", gateway, gateway, args.clients, args.seconds))]
        if not args.no_baseline:
            runs.append(asyncio.run(load("diagram service (direct, baseline)",
                                         settings.service_url("diagram"),
                                         settings.service_url("auth"),
                                         args.clients, args.seconds)))
        results = [run.summary() for run in runs]
        ratio = None
        if len(results) == 2:
            ours = results[0]["operations"]["all"]["req_per_s"]  # type: ignore[index]
            base = results[1]["operations"]["all"]["req_per_s"]  # type: ignore[index]
            ratio = round(ours / base, 2) if base else None
        if args.json:
            print(json.dumps({"clients": args.clients, "runs": results,
                              "gateway_over_direct_throughput": ratio}, indent=2))
        else:
            print(f"clients: {args.clients}")
            for result in results:
                print_table(result)
            if ratio is not None:
                print(f"\nthroughput through the gateway / direct: {ratio:.2f}x")
        return 0
    finally:
        if stack is not None:
            stack.down()
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
