"""The embedded local grid: facilitator, validator and miner as processes on loopback (DESIGN.md §10).

SQLite per role under ``GRID_HOME``, in-memory channel layers, the process runtime and keys
created on first run. ``grid up`` and ``grid demo`` use it, and so do the integration tests,
with free ports and a temporary home.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from protocol.keys import Keypair

__all__ = ["GridStartError", "LocalGrid", "free_port", "read_state"]

ROLES = ("facilitator", "validator", "miner")
STATE_FILE = "grid.json"


class GridStartError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_state(home: Path) -> dict | None:
    """The running grid recorded under ``home``, or ``None`` if it is not running."""
    try:
        state = json.loads((home / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pids", {}).get("facilitator")
    try:
        os.kill(int(pid), 0)
    except (TypeError, ValueError, ProcessLookupError, PermissionError):
        return None
    return state


@dataclass
class LocalGrid:
    home: Path
    facilitator_port: int = 8000
    miner_port: int = 8001
    executor_classes: str = "cpu.small:4:2"
    runtime: str = "process"
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        self.keys = {role: Keypair.load_or_create(self.home / "keys" / f"{role}.key") for role in ROLES}

    def __repr__(self) -> str:
        return f"<LocalGrid {self.home} facilitator={self.facilitator_url}>"

    @property
    def facilitator_url(self) -> str:
        return f"http://127.0.0.1:{self.facilitator_port}"

    @property
    def miner_ws(self) -> str:
        return f"ws://127.0.0.1:{self.miner_port}"

    def env(self, role: str) -> dict[str, str]:
        env = {
            **os.environ,
            "GRID_HOME": str(self.home),
            "DJANGO_SETTINGS_MODULE": f"grid.settings.{role}",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        hotkeys = {role: keypair.hotkey for role, keypair in self.keys.items()}
        if role == "facilitator":
            env["GRID_VALIDATOR_HOTKEYS"] = hotkeys["validator"]
            # Executors fetch and upload through the store's signed URLs: they must be absolute.
            env.setdefault("GRID_STORAGE_URL", f"{self.facilitator_url}/objects/")
        elif role == "miner":
            env["GRID_MINER_VALIDATOR_HOTKEYS"] = hotkeys["validator"]
            env["GRID_MINER_EXECUTOR_URL"] = f"{self.miner_ws}/ws/executor/"
            env["GRID_EXECUTOR_CLASSES"] = self.executor_classes
            env["GRID_EXECUTOR_RUNTIME"] = self.runtime
        else:
            env["GRID_FACILITATOR_URL"] = f"ws://127.0.0.1:{self.facilitator_port}/ws/validator/"
            env["GRID_FACILITATOR_HOTKEY"] = hotkeys["facilitator"]
            env["GRID_MINERS"] = f"{hotkeys['miner']}@{self.miner_ws}/ws/validator/"
        return env

    def _command(self, role: str) -> list[str]:
        if role == "validator":
            return [sys.executable, "-m", "django", "run_connector"]
        port = self.facilitator_port if role == "facilitator" else self.miner_port
        return [sys.executable, "-m", "grid.serve", "-b", "127.0.0.1", "-p", str(port), "grid.asgi:application"]

    def migrate(self) -> None:
        for role in ROLES:
            done = subprocess.run(
                [sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"],
                env=self.env(role),
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise GridStartError(f"migrating the {role} database failed:\n{done.stderr[-2000:]}")

    def start_role(self, role: str) -> subprocess.Popen:
        log_dir = self.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log = open(log_dir / f"{role}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            self._command(role), env=self.env(role), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[role] = process
        return process

    def start(self, timeout: float = 30.0) -> None:
        """Migrate, start every role, and wait until the validator is connected to the facilitator."""
        self.migrate()
        for role in ("facilitator", "miner", "validator"):
            self.start_role(role)
        self.write_state()
        try:
            self.wait_ready(timeout)
        except GridStartError:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for role, process in self.processes.items():
                if process.poll() is not None:
                    raise GridStartError(
                        f"the {role} exited with {process.returncode}; see {self.home}/logs/{role}.log"
                    )
            try:
                health = httpx.get(f"{self.facilitator_url}/api/v1/health", timeout=1).json()
                if health.get("validators", 0) >= 1:
                    return
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.05)
        raise GridStartError(f"the local grid was not ready within {timeout:g}s; see {self.home}/logs/")

    def write_state(self) -> None:
        state = {
            "facilitator_url": self.facilitator_url,
            "facilitator_hotkey": self.keys["facilitator"].hotkey,
            "miner_url": self.miner_ws,
            "pids": {role: process.pid for role, process in self.processes.items()},
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))

    def stop_role(self, role: str, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
        process = self.processes.pop(role, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)  # the miner's executors share its process group
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        for role in ("validator", "miner", "facilitator"):
            self.stop_role(role)
        (self.home / STATE_FILE).unlink(missing_ok=True)
