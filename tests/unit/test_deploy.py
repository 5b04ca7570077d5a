"""The container deployment as files: the Dockerfile, deploy/compose.yaml and deploy/k8s.

No container engine runs on the development machine, so these tests check what can be checked
without one: the compose file against Compose's own schema (``docker-compose config``) and the
plan's names, ports and health checks; the kustomize output (``kubectl kustomize``) and its
kinds; and that every command the images are given is a real ``autograph`` command.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from autograph.cli.main import app
from autograph.cli.serve import SERVABLE

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

# The plan's compose service names and the ports its health table and runbooks use.
PLAN_SERVICES = {
    "postgres": 5432, "redis": 6379, "minio": 9000, "api-gateway": 8080, "auth-service": 8085,
    "diagram-service": 8082, "ai-service": 8084, "collaboration-service": 8083,
    "export-service": 8097, "git-service": 8087, "integration-hub": 8099,
    "svg-renderer": 8096, "frontend": 3000,
}
PLAN_CONTAINERS = {"postgres": "autograph-postgres", "redis": "autograph-redis",
                   "minio": "autograph-minio"}
PLAN_FILE_CANDIDATES = [ROOT.parent / "shared" / "seed", ROOT.parents[1] / "shared" / "seed",
                        Path("/work/shared/seed")]


def assert_real_command(args: list[str]) -> None:
    """``autograph ARGS`` names an existing command (and ``serve``/``probe`` a real
    component): its ``--help`` succeeds."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"autograph {' '.join(args)}: {result.output}"
    if args[0] in ("serve", "probe") and len(args) > 1:
        assert args[1] in SERVABLE, f"autograph {args[0]} {args[1]}: not servable"


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


# Dockerfile ----------------------------------------------------------------------------------

def dockerfile_instructions() -> dict[str, str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^(ENTRYPOINT|CMD|HEALTHCHECK|USER|FROM)\s+(.*)$", line.strip())
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_the_dockerfile_runs_real_commands_as_a_non_root_user() -> None:
    found = dockerfile_instructions()
    entrypoint = json.loads(found["ENTRYPOINT"])
    cmd = json.loads(found["CMD"])
    health = json.loads(found["HEALTHCHECK"].split(" CMD ", 1)[1])
    assert entrypoint == ["autograph"]
    assert_real_command(cmd)
    assert health[0] == "autograph"
    assert_real_command(health[1:])
    assert found["USER"] not in ("root", "0")
    assert found["FROM"].startswith("python:3.11")


def test_an_unknown_service_is_refused_with_one_line() -> None:
    result = CliRunner().invoke(app, ["serve", "mainframe"])
    assert result.exit_code != 0
    assert "cannot serve 'mainframe'" in result.output
    assert "Traceback" not in result.output


# Compose -------------------------------------------------------------------------------------

def test_compose_has_every_plan_service_with_its_port_and_a_health_check() -> None:
    services = compose()["services"]
    for name, port in PLAN_SERVICES.items():
        assert name in services, f"{name} missing"
        published = [int(str(p).split(":")[0]) for p in services[name].get("ports", [])]
        assert port in published, f"{name}: port {port} not published ({published})"
        health = services[name].get("healthcheck", {})
        assert health.get("test") and not health.get("disable"), f"{name}: no health check"
    for name, container in PLAN_CONTAINERS.items():
        assert services[name]["container_name"] == container
    assert services["postgres"]["image"] == "postgres:15"
    assert services["redis"]["image"].startswith("redis")
    assert services["minio"]["image"].startswith("minio/minio")


def test_the_plans_compose_commands_name_existing_services() -> None:
    plans = [p for folder in PLAN_FILE_CANDIDATES if folder.is_dir()
             for p in folder.glob("*.txt")]
    if not plans:
        pytest.skip("the plan (shared/seed) is not beside this checkout")
    services = set(compose()["services"])
    text = "\n".join(p.read_text(errors="replace") for p in plans)
    named = set()
    for args in re.findall(r"docker-compose (?:stop|start|restart|up -d)\s+([a-z0-9 -]+)", text):
        named |= {word for word in args.split() if not word.startswith("-")}
    assert named, "no docker-compose command found in the plan"
    assert named <= services, f"the plan names {sorted(named - services)}"
    containers = {s.get("container_name") for s in compose()["services"].values()}
    assert set(re.findall(r"docker exec (autograph-[a-z]+)", text)) <= containers


def test_compose_services_run_real_commands_with_secrets_from_files() -> None:
    data = compose()
    for name, service in data["services"].items():
        if service.get("image", "").startswith("autograph"):
            assert_real_command(service["command"])
            env = service["environment"]
            assert env["AUTOGRAPH_SECRETS_PATH"] == "/run/secrets"
            assert not [k for k in env if re.search(r"(PASSWORD|_KEY)$", k)], name
    assert all("file" in spec for spec in data["secrets"].values())
    assert all("autograph" in spec["name"] for spec in data["volumes"].values())


def test_compose_file_passes_composes_own_validation() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (scripts/install.sh installs it)")
    result = subprocess.run([binary, "-f", str(DEPLOY / "compose.yaml"), "config", "-q"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# Kubernetes ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed")
    result = subprocess.run([kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def test_kustomize_renders_services_as_deployments_and_services(
        rendered: list[dict[str, Any]]) -> None:
    deployments, services = by_kind(rendered, "Deployment"), by_kind(rendered, "Service")
    apps = {name: port for name, port in PLAN_SERVICES.items()
            if name not in ("postgres", "redis", "minio")}
    for name, port in apps.items():
        assert name in deployments, f"Deployment {name} missing"
        assert [p["port"] for p in services[name]["spec"]["ports"]] == [port]
        container = pod_spec(deployments[name])["containers"][0]
        assert container["ports"][0]["containerPort"] == port
        assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert {doc["kind"] for doc in rendered} >= {"Namespace", "ConfigMap", "Deployment",
                                                 "Service", "CronJob",
                                                 "PersistentVolumeClaim"}


def test_the_dr_daemon_is_one_replica_and_the_gateways_leave_it_the_schedules(
        rendered: list[dict[str, Any]]) -> None:
    deployments = by_kind(rendered, "Deployment")
    for name in ("dr-daemon", "walstream"):
        assert deployments[name]["spec"]["replicas"] == 1
        assert deployments[name]["spec"]["strategy"]["type"] == "Recreate"
    gateway_env = {e["name"]: e["value"] for e in
                   pod_spec(deployments["api-gateway"])["containers"][0]["env"]}
    assert gateway_env["AUTOGRAPH_SCHEDULER_ENABLED"] == "false"
    drill = by_kind(rendered, "CronJob")["dr-drill"]
    assert drill["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod_spec(drill)["containers"][0]["args"][:2] == ["dr", "drill"]


def test_every_pod_runs_real_commands_non_root_with_credentials_from_the_secret(
        rendered: list[dict[str, Any]]) -> None:
    assert not by_kind(rendered, "Secret"), "credentials must not be in the manifests"
    pods = [*by_kind(rendered, "Deployment").values(), *by_kind(rendered, "CronJob").values()]
    for doc in pods:
        spec = pod_spec(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True, doc["metadata"]["name"]
        secrets = [v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v]
        assert secrets == ["autograph-secrets"], doc["metadata"]["name"]
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            assert_real_command(container["args"])
            assert not container.get("command"), "the image's entrypoint is autograph"
            assert all("valueFrom" not in e and "PASSWORD" not in e["name"]
                       for e in container.get("env", []))
    config = next(iter(by_kind(rendered, "ConfigMap").values()))["data"]
    assert config["AUTOGRAPH_SECRETS_PATH"] == "/run/secrets/autograph"
    assert json.loads(config["AUTOGRAPH_SERVICE_HOSTS"])["auth"] == "auth-service"
