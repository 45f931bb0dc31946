"""The embedded local grid: facilitator, validator and miners as processes on loopback (DESIGN.md §10).

SQLite per role under ``GRID_HOME``, in-memory channel layers, the process runtime and keys
created on first run. ``grid up`` and ``grid demo`` use it, and so do the integration tests,
with free ports and a temporary home.

The miners announce themselves to the facilitator's registry and the validator finds them
there (both sync every ``registry_sync_s``, a second by default). The first miner is the role
``miner`` (key ``keys/miner.key``, database ``miner.sqlite3``, work root ``work``); miner *i* > 0
is ``miner-i`` with ``keys/miner-i.key``, ``miner-i.sqlite3``, ``work-i``, its own port and the
next block of streaming ports.

Given a ``dashboard_port``, the grid also serves the validator's dashboard (``validator/dashboard/``:
a web process on the validator's settings and database) and creates its local admin account.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from protocol.keys import Keypair

__all__ = ["GridStartError", "LocalGrid", "free_port", "read_state"]

STATE_FILE = "grid.json"
STATUS_FILE = "validator-status.json"
STREAMING_PORTS = "40000-40099"
DASHBOARD = "dashboard"


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
    """A local grid.

    Args:
        miners: how many miners; their ports are ``miner_ports``, or ``miner_port`` and the next ones.
        miner_env: extra environment per miner (index 0 is ``miner``), applied last.
        validator_env: extra environment of the validator, applied last.
        registry_sync_s: how often miners and the validator sync the registry.
        dashboard_port: serve the validator's dashboard there (``grid up``: 8002); ``None``: no dashboard.
    """

    home: Path
    facilitator_port: int = 8000
    miner_port: int = 8001
    executor_classes: str = "cpu.small:4:2"
    runtime: str = "process"
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    miners: int = 1
    miner_ports: list[int] = field(default_factory=list)
    miner_env: list[dict[str, str]] = field(default_factory=list)
    validator_env: dict[str, str] = field(default_factory=dict)
    registry_sync_s: float = 1.0
    dashboard_port: int | None = None
    control_port: int | None = None  # the control plane's gRPC port (docs/control-plane.md); None: not served
    admin_login: tuple[str, str] | None = field(default=None, init=False)  # the dashboard's, once started

    def __post_init__(self) -> None:
        self.home = Path(self.home).resolve()
        if self.miners < 1:
            raise ValueError(f"a local grid needs at least one miner, not {self.miners}")
        if not self.miner_ports:
            self.miner_ports = [self.miner_port + index for index in range(self.miners)]
        if len(self.miner_ports) != self.miners:
            raise ValueError(f"{self.miners} miners need {self.miners} miner ports, not {self.miner_ports}")
        if len({self.facilitator_port, *self.miner_ports}) != self.miners + 1:
            raise ValueError(f"the facilitator and each miner need ports of their own: {self.ports}")
        if len(self.miner_env) > self.miners:
            raise ValueError(f"miner_env has {len(self.miner_env)} entries for {self.miners} miners")
        if self.dashboard_port is not None and self.dashboard_port in self.ports.values():
            raise ValueError(f"the dashboard needs a port of its own, not one of {self.ports}")
        self.miner_port = self.miner_ports[0]
        self.keys = {role: Keypair.load_or_create(self.home / "keys" / f"{role}.key") for role in self.roles}

    def __repr__(self) -> str:
        return f"<LocalGrid {self.home} facilitator={self.facilitator_url} miners={self.miners}>"

    @property
    def roles(self) -> list[str]:
        return ["facilitator", "validator", *self.miner_roles]

    @property
    def miner_roles(self) -> list[str]:
        return ["miner", *(f"miner-{index}" for index in range(1, self.miners))]

    @property
    def ports(self) -> dict[str, int]:
        return {"facilitator": self.facilitator_port, **dict(zip(self.miner_roles, self.miner_ports, strict=False))}

    @property
    def facilitator_url(self) -> str:
        return f"http://127.0.0.1:{self.facilitator_port}"

    @property
    def miner_ws(self) -> str:
        return self.miner_ws_of("miner")

    def miner_ws_of(self, role: str) -> str:
        """The ws root validators dial for miner ``role`` (``miner``, ``miner-1`` …)."""
        return f"ws://127.0.0.1:{self.ports[role]}"

    @property
    def control_endpoint(self) -> str | None:
        """``host:port`` of the control plane's gRPC API, if served."""
        return f"127.0.0.1:{self.control_port}" if self.control_port else None

    @property
    def dashboard_url(self) -> str | None:
        return f"http://127.0.0.1:{self.dashboard_port}" if self.dashboard_port is not None else None

    def env(self, role: str) -> dict[str, str]:
        if role == DASHBOARD:
            return self.env("validator")  # the validator's settings and database
        env = {
            **os.environ,
            "GRID_HOME": str(self.home),
            "DJANGO_SETTINGS_MODULE": f"grid.settings.{role.partition('-')[0]}",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        hotkeys = {role: keypair.hotkey for role, keypair in self.keys.items()}
        if role == "facilitator":
            env["GRID_VALIDATOR_HOTKEYS"] = hotkeys["validator"]
            # Executors fetch and upload through the store's signed URLs: they must be absolute.
            env.setdefault("GRID_STORAGE_URL", f"{self.facilitator_url}/objects/")
            if self.control_port:
                env["GRID_CONTROL_PORT"] = str(self.control_port)
            return env
        env["GRID_FACILITATOR_API"] = self.facilitator_url
        env["GRID_FACILITATOR_HOTKEY"] = hotkeys["facilitator"]
        env.setdefault("GRID_REGISTRY_SYNC_S", f"{self.registry_sync_s:g}")
        if role == "validator":
            # (extra_env may route it elsewhere: the fault tests put a proxy they can cut in between)
            env.setdefault("GRID_FACILITATOR_URL", f"ws://127.0.0.1:{self.facilitator_port}/ws/validator/")
            env["GRID_VALIDATOR_STATUS_FILE"] = str(self.home / STATUS_FILE)
            env.pop("GRID_MINERS", None)  # the miners are the registry's
            env.update(self.validator_env)
            return env
        index = self.miner_roles.index(role)
        # The validator is also named statically: it connects at once, before the miner's first sync.
        env["GRID_MINER_VALIDATOR_HOTKEYS"] = hotkeys["validator"]
        env["GRID_MINER_ADDRESS"] = self.miner_ws_of(role)
        env["GRID_MINER_EXECUTOR_URL"] = f"{self.miner_ws_of(role)}/ws/executor/"
        env["GRID_EXECUTOR_CLASSES"] = self.executor_classes
        env["GRID_EXECUTOR_RUNTIME"] = self.runtime
        if index > 0:
            env["GRID_KEY_FILE"] = str(self.home / "keys" / f"{role}.key")
            env["GRID_DATABASE_URL"] = f"sqlite:///{self.home / f'{role}.sqlite3'}"
            work_root = env.get("GRID_EXECUTOR_WORK_ROOT")
            env["GRID_EXECUTOR_WORK_ROOT"] = f"{work_root}-{index}" if work_root else str(self.home / f"work-{index}")
            env["GRID_STREAMING_PORTS"] = _shifted(env.get("GRID_STREAMING_PORTS", STREAMING_PORTS), index)
        if index < len(self.miner_env):
            env.update(self.miner_env[index])
        return env

    def _command(self, role: str) -> list[str]:
        if role == "validator":
            return [sys.executable, "-m", "django", "run_connector"]
        port = self.dashboard_port if role == DASHBOARD else self.ports[role]
        return [sys.executable, "-m", "grid.serve", "-b", "127.0.0.1", "-p", str(port), "grid.asgi:application"]

    def migrate(self) -> None:
        """Every role's database: the facilitator's first (its settings create the home's shared
        secret key, which the others must not race to create), then the others side by side."""
        self._migrate(["facilitator"])
        self._migrate([role for role in self.roles if role != "facilitator"])

    def _migrate(self, roles: list[str]) -> None:
        running = {
            role: subprocess.Popen(
                [sys.executable, "-m", "django", "migrate", "--no-input", "-v", "0"],
                env=self.env(role),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for role in roles
        }
        for role, process in running.items():
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise GridStartError(f"migrating the {role} database failed:\n{stderr[-2000:]}")

    def start_role(self, role: str) -> subprocess.Popen:
        if role not in self.roles and not (role == DASHBOARD and self.dashboard_port is not None):
            raise ValueError(f"no role {role!r} in this grid; it has {', '.join(self.roles)}")
        log_dir = self.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        if role == "validator":
            (self.home / STATUS_FILE).unlink(missing_ok=True)  # what a previous run said no longer holds
        log = open(log_dir / f"{role}.log", "ab")  # noqa: SIM115 (the child owns it)
        process = subprocess.Popen(
            self._command(role), env=self.env(role), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        self.processes[role] = process
        return process

    def start(self, timeout: float = 30.0) -> None:
        """Migrate, start every role, and wait until the validator is connected to the facilitator and every miner."""
        self.migrate()
        for role in ["facilitator", *self.miner_roles, "validator"]:
            self.start_role(role)
        if self.dashboard_port is not None:
            self.start_role(DASHBOARD)
        self.write_state()
        try:
            self.wait_ready(timeout)
            if self.dashboard_port is not None:
                self.admin_login = self.wait_dashboard(timeout)
        except GridStartError:
            self.stop()
            raise

    def validator_status(self) -> dict | None:
        """What the running validator last said of its connections (``None`` before it said anything)."""
        process = self.processes.get("validator")
        try:
            status = json.loads((self.home / STATUS_FILE).read_text())
        except (OSError, ValueError):
            return None
        return status if process is not None and status.get("pid") == process.pid else None

    def connected_miners(self) -> set[str]:
        """Hotkeys of the miners the validator is connected to right now."""
        status = self.validator_status() or {}
        return {hotkey for hotkey, up in status.get("miners", {}).items() if up}

    def wait_ready(self, timeout: float = 30.0, miners: list[str] | None = None) -> None:
        """Until the validator is connected to the facilitator and to each miner role in ``miners`` (default: all).

        Raises:
            GridStartError: a process exited, or the time ran out (saying what was missing).
        """
        wanted = {self.keys[role].hotkey: role for role in (self.miner_roles if miners is None else miners)}
        deadline = time.monotonic() + timeout
        missing = "the validator's status"
        while time.monotonic() < deadline:
            for role, process in self.processes.items():
                if process.poll() is not None:
                    raise GridStartError(
                        f"the {role} exited with {process.returncode}; see {self.home}/logs/{role}.log"
                    )
            status = self.validator_status()
            if status is not None:
                connected = self.connected_miners()
                absent = [role for hotkey, role in wanted.items() if hotkey not in connected]
                missing = ", ".join((["the facilitator"] if not status.get("facilitator") else []) + absent)
                if not missing:
                    return
            time.sleep(0.05)
        raise GridStartError(
            f"the local grid was not ready within {timeout:g}s (the validator lacked {missing}); see {self.home}/logs/"
        )

    def wait_dashboard(self, timeout: float = 30.0) -> tuple[str, str]:
        """Create the dashboard's admin account on first run and wait until the dashboard answers.

        Returns:
            ``(username, password)``; the password is ``""`` if the operator has changed it.
        """
        done = subprocess.run(
            [sys.executable, "-m", "django", "ensure_admin", "--json"],
            env=self.env(DASHBOARD),
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise GridStartError(f"creating the dashboard's admin account failed:\n{done.stderr[-2000:]}")
        login = json.loads(done.stdout)
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy
        log = f"{self.home}/logs/{DASHBOARD}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[DASHBOARD]
            if process.poll() is not None:
                raise GridStartError(f"the dashboard exited with {process.returncode}; see {log}")
            try:
                with direct.open(f"{self.dashboard_url}/login/", timeout=1):
                    return login["username"], login["password"]
            except OSError:
                time.sleep(0.05)
        raise GridStartError(f"the dashboard did not answer within {timeout:g}s; see {log}")

    def write_state(self) -> None:
        state = {
            "facilitator_url": self.facilitator_url,
            "facilitator_hotkey": self.keys["facilitator"].hotkey,
            "miner_url": self.miner_ws,
            "miners": [
                {"role": role, "url": self.miner_ws_of(role), "hotkey": self.keys[role].hotkey}
                for role in self.miner_roles
            ],
            "pids": {role: process.pid for role, process in self.processes.items()},
            "dashboard_url": self.dashboard_url,
            "control_endpoint": self.control_endpoint,
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
        self.stop_role(DASHBOARD, timeout=2.0)  # a browser's open live stream holds up its graceful stop
        for role in ["validator", *reversed(self.miner_roles), "facilitator"]:
            self.stop_role(role)
        (self.home / STATE_FILE).unlink(missing_ok=True)


def _shifted(ports: str, index: int) -> str:
    """Miner ``index``'s block of streaming ports: the first miner's ``A-B``, moved up ``index`` times its size."""
    first, _, last = ports.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise GridStartError(f"GRID_STREAMING_PORTS must look like 40000-40099, not {ports!r}") from None
    size = high - low + 1
    return f"{low + index * size}-{high + index * size}"
