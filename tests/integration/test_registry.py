"""The registry with real processes: miners announce themselves, the validator finds them there.

Two miners, each offering its own executor class (so that which miner runs a job is decided
by the job, not by chance); the facilitator keeps the registry in its database; miners and the
validator sync it every second. Removing a miner with ``grid registry remove`` ends its
connection from the validator, and with it its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facilitator_sdk import AsyncClient, Client, JobSpec
from grid.local import LocalGrid, free_port
from protocol.errors import HandshakeError
from protocol.keys import Keypair
from protocol.messages import FACILITATOR_TO_VALIDATOR, MINER_TO_VALIDATOR
from protocol.registry import RegistrySnapshot, Role, verify_registry
from protocol.transport import connect
from tests.integration.conftest import RUNNING

WAIT_S = 30.0


def py(code: str, **spec: object) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], **spec)


def start(home: Path, **options: object) -> LocalGrid:
    grid = LocalGrid(
        home,
        facilitator_port=free_port(),
        miner_ports=[free_port(), free_port()],
        miners=2,
        executor_classes="cpu.small:2:1",
        miner_env=[{}, {"GRID_EXECUTOR_CLASSES": "cpu.small:2:1,cpu.medium:2:1"}],
        extra_env={"GRID_REDELIVER_S": "0.5", "GRID_QUEUE_TIMEOUT_S": "30"},
        **options,  # type: ignore[arg-type]
    )
    RUNNING.append(grid)
    return grid


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalGrid]:
    grid = start(tmp_path_factory.mktemp("registry"))
    grid.start(timeout=60)
    try:
        yield grid
    finally:
        grid.stop()


def registry_cli(grid: LocalGrid, *args: str) -> str:
    env = {**os.environ, "GRID_HOME": str(grid.home)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run(
        [sys.executable, "-m", "grid.cli", "registry", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def snapshot(grid: LocalGrid) -> RegistrySnapshot:
    response = httpx.get(f"{grid.facilitator_url}/api/v1/registry", timeout=10)
    response.raise_for_status()
    snapshot = RegistrySnapshot.model_validate_json(response.content)
    verify_registry(snapshot, grid.keys["facilitator"].hotkey)
    return snapshot


def consecutive_free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports (``grid up --miners`` takes consecutive ones)."""
    while True:
        first = free_port()
        with contextlib.ExitStack() as stack:
            try:
                for port in range(first, first + count):
                    stack.enter_context(socket.create_server(("127.0.0.1", port)))
            except OSError:
                continue
        return first


def wait_until(condition, what: str, timeout: float = WAIT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {timeout:g}s")
        time.sleep(0.05)


async def test_the_validator_finds_both_miners_in_the_registry_and_runs_jobs_on_each(
    grid: LocalGrid, tmp_path: Path
) -> None:
    miners = {grid.keys[role].hotkey: role for role in grid.miner_roles}
    registered = snapshot(grid)
    assert {n.hotkey: n.address for n in registered.of_role(Role.MINER)} == {
        grid.keys[role].hotkey: grid.miner_ws_of(role) for role in grid.miner_roles
    }
    assert [n.hotkey for n in registered.of_role(Role.VALIDATOR)] == [grid.keys["validator"].hotkey]
    # Only miner-1 offers cpu.medium: each job class has its miner.
    async with AsyncClient(grid.facilitator_url, tmp_path / "client.key") as client:
        small = [await client.create_job(py(f"print({i})")) for i in range(2)]
        medium = [await client.create_job(py(f"print({i})", executor_class="cpu.medium")) for i in range(2)]
        done = await asyncio.gather(*(job.wait(timeout=60) for job in [*small, *medium]))
    assert [job.status for job in done] == ["completed"] * 4
    assert {job.miner for job in done[2:]} == {grid.keys["miner-1"].hotkey}
    assert {job.miner for job in done} <= set(miners)
    log = (grid.home / "logs" / "validator.log").read_text()
    for hotkey in miners:
        assert log.count(f"connected to miner {hotkey[:12]}\n") == 1, "one connection per miner"


async def test_an_unregistered_hotkey_is_refused_at_the_facilitators_and_the_miners_handshake(
    grid: LocalGrid,
) -> None:
    stranger = Keypair.generate()
    facilitator = f"ws://127.0.0.1:{grid.facilitator_port}/ws/validator/"
    with pytest.raises(HandshakeError) as refused:
        await connect(facilitator, stranger, "validator", FACILITATOR_TO_VALIDATOR)
    assert refused.value.close_code == 4403
    assert f"hotkey {stranger.hotkey} is not allowed as validator" in str(refused.value)
    for role in grid.miner_roles:
        with pytest.raises(HandshakeError) as refused:
            await connect(f"{grid.miner_ws_of(role)}/ws/validator/", stranger, "validator", MINER_TO_VALIDATOR)
        assert refused.value.close_code == 4403
    # A registered miner is no validator.
    with pytest.raises(HandshakeError) as refused:
        await connect(facilitator, grid.keys["miner-1"], "validator", FACILITATOR_TO_VALIDATOR)
    assert refused.value.close_code == 4403


def test_a_miner_removed_from_the_registry_is_hung_up_on_and_gets_no_more_jobs(grid: LocalGrid, tmp_path: Path) -> None:
    gone, staying = grid.keys["miner-1"].hotkey, grid.keys["miner"].hotkey
    assert "deactivated miner" in registry_cli(grid, "remove", "miner-1")
    assert snapshot(grid).find(gone).active is False
    wait_until(lambda: grid.connected_miners() == {staying}, "hung up on the removed miner")
    try:
        with Client(grid.facilitator_url, tmp_path / "client.key") as client:
            done = [client.run(py(f"print({i})"), timeout=60) for i in range(4)]
            assert {job.miner for job in done} == {staying}
            # What only the removed miner offered is offered by nobody now.
            lost = client.create_job(py("print('medium')", executor_class="cpu.medium"))
            client.wait(lost, timeout=60)
        assert (lost.status, lost.failure["reason"]) == ("rejected", "no_miner"), lost.failure
        # The removed miner keeps announcing; a deactivated miner is refused, not let back in.
        log = grid.home / "logs" / "miner-1.log"
        wait_until(lambda: "HTTP 403 deactivated" in log.read_text(), "refused the removed miner's announcement")
        assert snapshot(grid).find(gone).active is False
    finally:
        registry_cli(grid, "add", "miner-1", "--role", "miner")
        wait_until(lambda: grid.connected_miners() == {staying, gone}, "connected to the miner added back")


def test_a_closed_registry_leaves_an_unregistered_miner_undialled(tmp_path: Path) -> None:
    """Only the first miner is registered by the operator; the second announces, is refused, and is never dialled."""
    grid = start(tmp_path / "closed")
    grid.extra_env["GRID_REGISTRY_OPEN"] = "false"
    try:
        grid.migrate()
        registry_cli(grid, "add", "miner", "--role", "miner")  # registered, without an address yet
        grid.start_role("facilitator")
        for role in grid.miner_roles:
            grid.start_role(role)
        grid.start_role("validator")
        grid.write_state()
        grid.wait_ready(timeout=60, miners=["miner"])
        log = grid.home / "logs" / "miner-1.log"
        wait_until(lambda: log.read_text().count("HTTP 403 not_registered") >= 2, "refused the miner twice")
        assert snapshot(grid).find(grid.keys["miner-1"].hotkey) is None
        version = json.loads((grid.home / "validator-status.json").read_text())["registry_version"]
        assert version == snapshot(grid).version, "the validator has the registry that lacks it"
        assert grid.connected_miners() == {grid.keys["miner"].hotkey}
        with Client(grid.facilitator_url, tmp_path / "client.key") as client:
            job = client.run(py("print('hi')"), timeout=60)
        assert job.miner == grid.keys["miner"].hotkey
    finally:
        grid.stop()


def test_grid_up_runs_several_miners(tmp_path: Path) -> None:
    env = {**os.environ, "GRID_HOME": str(tmp_path), "GRID_REGISTRY_SYNC_S": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    port, first = free_port(), consecutive_free_ports(2)
    up = subprocess.Popen(
        [
            *[sys.executable, "-m", "grid.cli", "up", "--port", str(port), "--miner-port", str(first), "--miners", "2"],
            *["--dashboard-port", str(free_port())],
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        lines = []
        while "running; press Ctrl-C to stop" not in (line := up.stdout.readline()):
            assert line, f"grid up ended early:\n{''.join(lines)}{up.stderr.read()}"
            lines.append(line)
        banner = "".join(lines)
        assert f"miner        ws://127.0.0.1:{first}/ws/validator/" in banner
        assert f"miner-1      ws://127.0.0.1:{first + 1}/ws/validator/" in banner
        assert "connected to the facilitator and 2 miner(s)" in banner
        assert (tmp_path / "keys" / "miner-1.key").exists() and (tmp_path / "miner-1.sqlite3").exists()
        state = json.loads((tmp_path / "grid.json").read_text())
        assert [m["role"] for m in state["miners"]] == ["miner", "miner-1"]
    finally:
        up.terminate()
        up.wait(60)
