"""Driving compose/local-grid.yml with docker-compose, for tests/compose and bench/compose_stack.py.

One project (``PROJECT``) of local-grid.yml with the host-network override, on the engine the
caller names; its application services answer on 127.0.0.1:18000-18002.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "gridmarket-test"
FILES = ["compose/local-grid.yml", "compose/host-network.override.yml"]
IMAGES = ["gridmarket/app:latest", "gridmarket/postgres:latest", "gridmarket/redis:latest"]
FACILITATOR = "http://127.0.0.1:18000"
# Every port the stack listens on (compose/local-grid.yml and the override).
PORTS = [18000, 18001, 18002, 15432, 15433, 15434, 16379, 16380, 16381]
ONE_SHOT = {"keys", "facilitator-migrate", "validator-migrate", "miner-migrate"}
LONG_RUNNING = {
    "facilitator",
    "facilitator-postgres",
    "facilitator-redis",
    "validator",
    "validator-postgres",
    "validator-redis",
    "validator-celery",
    "validator-dashboard",
    "miner",
    "miner-postgres",
    "miner-redis",
    "miner-celery",
}


class Stack:
    """docker-compose for one project of local-grid.yml, on the test engine."""

    def __init__(self, engine: str, work_dir: Path) -> None:
        self.engine = engine
        self.env = {
            **os.environ,
            "DOCKER_HOST": engine,
            "DOCKER_SOCKET": engine.removeprefix("unix://"),
            "GRID_MINER_WORK_DIR": str(work_dir),
            "COMPOSE_PROJECT_NAME": PROJECT,
        }
        self.work_dir = work_dir

    def compose(self, *args: str, timeout: float = 300) -> str:
        command = ["docker-compose", *(arg for f in FILES for arg in ("-f", f)), *args]
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def containers(self) -> dict[str, dict[str, Any]]:
        """The project's containers by service: state, health, exit code."""
        ids = self.docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
        if not ids:
            return {}
        found = {}
        for item in json.loads(self.docker("inspect", *ids)):
            service = item["Config"]["Labels"]["com.docker.compose.service"]
            state = item["State"]
            found[service] = {
                "status": state["Status"],
                "health": (state.get("Health") or {}).get("Status"),
                "exit": state["ExitCode"],
                "id": item["Id"],
            }
        return found

    def docker(self, *args: str) -> str:
        done = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {done.stderr}")
        return done.stdout

    def wait_healthy(self, services: set[str], timeout: float = 180) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            state = self.containers()
            unhealthy = {
                name: state.get(name) for name in services if (state.get(name) or {}).get("health") != "healthy"
            }
            if not unhealthy:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"not healthy after {timeout:.0f}s: {unhealthy}\n{self.logs()}")
            time.sleep(1)

    def logs(self, tail: int = 30) -> str:
        try:
            return self.compose("logs", "--no-color", f"--tail={tail}", timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def images_missing(engine: str) -> list[str]:
    env = {**os.environ, "DOCKER_HOST": engine}
    return [
        image
        for image in IMAGES
        if subprocess.run(["docker", "image", "inspect", image], env=env, capture_output=True).returncode != 0
    ]
