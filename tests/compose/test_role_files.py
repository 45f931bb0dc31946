"""The per-role compose files (compose/{facilitator,validator,miner}.yml) as an operator runs them.

``docker-compose config`` resolves each with its own ``env/ROLE.env.example`` (no engine
needed), and the result is checked against what DESIGN.md §10 and issue 6 ask of a deployment:
PostgreSQL and Redis per role, migrations before the app, a healthcheck on every long-running
service and a restart policy, named volumes for state, secrets never baked in, databases never
published, never Docker's default bridge.
tests/compose/test_local_grid.py brings the three up together.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.skipif(shutil.which("docker-compose") is None, reason="needs docker-compose")

COMPOSE = Path(__file__).resolve().parents[2] / "compose"
ROLES = {
    # role: (services that run and must be healthy, one-shot services)
    "facilitator": ({"facilitator", "facilitator-postgres", "facilitator-redis"}, {"facilitator-migrate"}),
    "validator": (
        {"validator", "validator-celery", "validator-dashboard", "validator-postgres", "validator-redis"},
        {"validator-migrate"},
    ),
    "miner": ({"miner", "miner-celery", "miner-postgres", "miner-redis"}, {"miner-migrate"}),
}


def config(role: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker-compose", "-f", f"{role}.yml", "config"],
        cwd=COMPOSE,
        env={**os.environ, "GRID_ENV_FILE": f"env/{role}.env.example", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def resolved(role: str) -> dict[str, Any]:
    done = config(role, POSTGRES_PASSWORD="from-the-operator")
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.parametrize("role", ROLES)
def test_a_role_file_refuses_to_start_without_a_database_password(role: str) -> None:
    done = config(role, POSTGRES_PASSWORD="")
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD" in done.stderr


@pytest.mark.parametrize("role", ROLES)
def test_every_service_of_a_role_file_is_deployable(role: str) -> None:
    services = resolved(role)["services"]
    running, one_shot = ROLES[role]
    assert set(services) == running | one_shot
    for name, service in services.items():
        # The project's own network or the host's (the miner): never Docker's default bridge.
        assert service.get("network_mode") in (None, "host"), name
        if name.endswith(("-postgres", "-redis")):
            assert "ports" not in service, f"{name}: a database must not be published"
        if name in one_shot:
            assert service.get("restart", "no") == "no", name
            continue
        assert service["restart"] == "unless-stopped", name
        assert service["healthcheck"]["test"], name
        assert all(":" in volume or isinstance(volume, dict) for volume in service.get("volumes", [])), name


@pytest.mark.parametrize("role", ROLES)
def test_the_app_starts_after_its_migrations_and_databases(role: str) -> None:
    services = resolved(role)["services"]
    app = services[role]
    assert app["depends_on"][f"{role}-migrate"]["condition"] == "service_completed_successfully"
    assert services[f"{role}-migrate"]["depends_on"][f"{role}-postgres"]["condition"] == "service_healthy"
    assert app["depends_on"][f"{role}-redis"]["condition"] == "service_healthy"


@pytest.mark.parametrize("role", ROLES)
def test_state_lives_in_named_volumes_and_no_secret_is_in_the_file(role: str) -> None:
    document = resolved(role)
    assert document["volumes"], "named volumes for databases, objects and keys"
    postgres = document["services"][f"{role}-postgres"]
    assert any(str(volume).endswith("/var/lib/postgresql/data") for volume in _targets(postgres))
    text = (COMPOSE / f"{role}.yml").read_text()
    assert "from-the-operator" not in text and "SECRET_KEY=" not in text


def _targets(service: dict[str, Any]) -> list[str]:
    targets = []
    for volume in service.get("volumes", []):
        targets.append(volume["target"] if isinstance(volume, dict) else volume.split(":")[1])
    return targets
