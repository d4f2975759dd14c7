"""The deployment files: docker-compose.yml is a valid Compose file (checked against the
Compose Specification's JSON schema, in Node) and runs what the README says it runs;
the Dockerfile builds a non-root image with a health check and production settings.

The schema check needs the packages `make test` installs from tests/node/package-lock.json
with npm; without npm it skips and says so, except in CI (INTEGRITY_GATEWAY_REQUIRE_NODE),
where it fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
NODE_TESTS = ROOT / "tests" / "node"


def node_or_skip() -> str:
    """The node binary, the packages installed; otherwise skip (or fail in CI)."""
    node = shutil.which("node")
    missing = (
        "Node.js is not installed (Debian: apt-get install nodejs npm; then make test)"
        if node is None
        else "the Node test packages are not installed (make node-deps)"
        if not (NODE_TESTS / "node_modules" / ".installed").exists()
        else None
    )
    if missing is None:
        assert node is not None
        return node
    if os.environ.get("INTEGRITY_GATEWAY_REQUIRE_NODE"):
        pytest.fail(missing)
    pytest.skip(missing)


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_compose_file_is_valid_compose() -> None:
    node = node_or_skip()
    checked = subprocess.run(
        [node, str(NODE_TESTS / "validate-compose.mjs"), str(ROOT / "docker-compose.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (checked.returncode, checked.stdout) == (0, "valid\n"), checked.stderr


def test_the_schema_check_finds_a_broken_compose_file(tmp_path: Path) -> None:
    node = node_or_skip()
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  gateway:\n    image: x\n    replicas: 2\n")
    checked = subprocess.run(
        [node, str(NODE_TESTS / "validate-compose.mjs"), str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1
    assert checked.stdout == (
        '/services/gateway must NOT have additional properties {"additionalProperty":"replicas"}\n'
    )


def test_the_compose_file_runs_a_replica_set_redis_two_gateways_and_a_watcher() -> None:
    services = _compose()["services"]
    assert set(services) == {
        "mongo1",
        "mongo2",
        "mongo3",
        "mongo-init",
        "redis",
        "gateway",
        "watcher",
    }
    for member in ("mongo1", "mongo2", "mongo3"):
        assert services[member]["command"] == ["mongod", "--replSet", "rs0", "--bind_ip_all"]
    init = " ".join(services["mongo-init"]["command"])
    assert all(f'host: "{m}:27017"' in init for m in ("mongo1", "mongo2", "mongo3"))
    gateway, watcher = services["gateway"], services["watcher"]
    assert gateway["deploy"]["replicas"] == 2
    assert gateway["command"] == ["serve"] and watcher["command"] == ["watch"]
    assert gateway["environment"]["WATCHER_ENABLED"] == "false"
    assert "WATCHER_ENABLED" not in watcher["environment"]
    for service in (gateway, watcher):
        environment = service["environment"]
        assert environment["GATEWAY_DEV_MODE"] == "false"
        assert environment["GATEWAY_SEED_ENTERPRISES"] == "${GATEWAY_SEED_ENTERPRISES:-0}"
        assert environment["MONGODB_URL"].endswith("/?replicaSet=rs0")
        # Keys come from the environment, and compose refuses to start without them.
        for required in ("AUTH_JWKS_URL", "CURSOR_SECRET", "PII_ENCRYPTION_KEYS"):
            assert re.fullmatch(rf"\$\{{{required}:\?.+\}}", environment[required])


def test_every_variable_the_deployment_sets_is_a_setting() -> None:
    services = _compose()["services"]
    fields = {name.upper() for name in Settings.model_fields}
    named = set(services["gateway"]["environment"]) | set(services["watcher"]["environment"])
    example = (ROOT / "deploy.env.example").read_text()
    named |= set(re.findall(r"^#? ?([A-Z_]+)=", example, re.M))
    assert named - fields == set()
    assert {"AUTH_JWKS_URL", "AUTH_ISSUER", "CURSOR_SECRET", "PII_ENCRYPTION_KEYS"} <= named


def test_the_image_runs_as_nobody_in_particular_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^USER gateway$", dockerfile, re.M)
    assert "useradd --system --uid 10001" in dockerfile
    assert re.search(r"^HEALTHCHECK .*\n.*http://127\.0\.0\.1:8000/healthz", dockerfile, re.M)
    assert "GATEWAY_DEV_MODE=false" in dockerfile
    assert "GATEWAY_SEED_ENTERPRISES=0" in dockerfile
    # What it copies is what the package holds.
    packages = re.search(r"include = \[(.*)\]", (ROOT / "pyproject.toml").read_text())
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert f"COPY {package} ./{package}" in dockerfile
