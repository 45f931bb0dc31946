"""The runtime contract, run against the docker runtime, then what only containers do (executor/runtimes/docker.py).

Runs against the real engine of docs/docker.md (the ``docker_engine`` fixture starts it and
builds the test images). Every test checks afterwards that no container of this process is
left on the engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import docker
import pytest

from executor.runtimes import RunOutcome, Runtime, RuntimeFailure, load_runtime
from executor.runtimes.base import JobDirs
from executor.runtimes.docker import (
    EXECUTOR_LABEL,
    FORKSERVER_LABEL,
    JOB_LABEL,
    MINER_LABEL,
    DockerRuntime,
    _hand_over,
    sweep_leftovers,
)
from executor.runtimes.docker_client import EngineUnavailable, connect
from protocol.messages import ExecutionDone, ExecutorReady, JobFailed, JobFinished, VolumesReady
from protocol.spec import JobSpec
from protocol.status import FailureReason, Stage
from tests.executor.test_driver import Executor, job, only_failure, types
from tests.executor.test_runtime_process import MAX_OUTPUT, PY, RuntimeContract, is_alive, spec

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_engine")]

BUSYBOX = "gridtest/busybox:latest"
PYTHON = "gridtest/python:latest"
REPO = Path(__file__).resolve().parents[2]
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def in_image(job: JobSpec) -> JobSpec:
    """The job in a test image: python3 of gridtest/python for the host's Python, else busybox."""
    if job.image is not None:
        return job
    if job.command[0] == PY:
        return job.model_copy(update={"image": PYTHON, "command": ["python3", *job.command[1:]]})
    return job.model_copy(update={"image": BUSYBOX})


def docker_spec(command: list[str], execution: float = 5.0, image: str = BUSYBOX, **fields: Any) -> JobSpec:
    return spec(command, execution=execution, image=image, **fields)


def driver_env(dirs: JobDirs, job_id: str = "job-under-test", **extra: str) -> dict[str, str]:
    """The environment JobDriver passes: host paths, which the runtime maps into the container."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        **extra,
        "GRID_JOB_ID": job_id,
        "GRID_INPUT_DIR": str(dirs.volume),
        "GRID_OUTPUT_DIR": str(dirs.output),
    }


def containers_of(client: docker.DockerClient, label: str, value: str) -> list[str]:
    return [c.id for c in client.containers.list(all=True, filters={"label": f"{label}={value}"})]


@pytest.fixture(autouse=True)
def no_container_left_behind(docker_client: docker.DockerClient) -> Iterator[None]:
    """Whatever a test did, the runtime removed every container it created."""
    yield
    assert containers_of(docker_client, EXECUTOR_LABEL, str(os.getpid())) == []


class StartObserved(DockerRuntime):
    """The docker runtime, handing the test its container once _start() is done."""

    def __init__(self, client: docker.DockerClient) -> None:
        super().__init__(client)
        self.started: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    async def _start(self, *args: Any) -> Any:
        handle = await super()._start(*args)
        self.started.set_result(handle.container)
        return handle


class TestDockerRuntime(RuntimeContract):
    """The contract of test_runtime_process.RuntimeContract, plus what containers add.

    ``run`` puts each contract job into a test image (the host's Python becomes the image's
    python3): jobs of the docker runtime always name their image. Nothing else is adjusted.
    """

    runtime_name = "executor.runtimes.docker.DockerRuntime"

    @pytest.fixture
    def runtime(self) -> Iterator[Runtime]:
        runtime = load_runtime(self.runtime_name)
        yield runtime
        runtime.close()  # type: ignore[attr-defined]

    async def run(self, runtime: Runtime, dirs: JobDirs, job: JobSpec, **options: Any) -> RunOutcome:
        return await super().run(runtime, dirs, in_image(job), **options)

    async def test_job_has_only_loopback_and_cannot_reach_the_host(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Network "none": no interface but lo, and a server on the host's 127.0.0.1 is refused."""
        with socket.create_server(("127.0.0.1", 0)) as server:
            port = server.getsockname()[1]
            socket.create_connection(("127.0.0.1", port), timeout=1).close()  # reachable from the host
            probe = (
                "import os, socket\n"
                "print(sorted(os.listdir('/sys/class/net')))\n"
                "try:\n"
                f"    socket.create_connection(('127.0.0.1', {port}), timeout=1); print('connected')\n"
                "except OSError as exc:\n"
                "    print(type(exc).__name__)\n"
            )
            outcome = await self.run(runtime, dirs, docker_spec(["python3", "-c", probe], image=PYTHON))
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "['lo']\nConnectionRefusedError\n")

    async def test_root_filesystem_is_read_only_but_tmp_and_output_are_writable(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """Writing /etc fails with EROFS; /tmp (tmpfs) and /output (the job's output dir) take writes."""
        script = "touch /etc/x; touch /tmp/x && echo tmp ok; touch /output/x && echo output ok"
        outcome = await self.run(runtime, dirs, docker_spec(["sh", "-c", script]))
        assert outcome.stderr.text() == "touch: /etc/x: Read-only file system\n"
        assert outcome.stdout.text() == "tmp ok\noutput ok\n"

    async def test_job_runs_as_nobody_without_capabilities_or_new_privileges(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """uid and gid 65534, no effective or bounding capabilities, no_new_privs set."""
        script = "id -u; id -g; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status"
        outcome = await self.run(runtime, dirs, docker_spec(["sh", "-c", script]))
        assert outcome.stdout.text() == (
            "65534\n65534\nCapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n"
        )

    async def test_inputs_are_read_only_at_volume_and_outputs_reach_the_host(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """Inputs are at $GRID_INPUT_DIR (/volume, read-only); files written to $GRID_OUTPUT_DIR are on the host."""
        (dirs.volume / "data").mkdir()
        (dirs.volume / "data" / "in.txt").write_text("input\n")
        script = (
            'cat "$GRID_INPUT_DIR/data/in.txt" > "$GRID_OUTPUT_DIR/out.txt"; '
            'mkdir "$GRID_OUTPUT_DIR/sub" && echo nested > "$GRID_OUTPUT_DIR/sub/more.txt"; '
            'touch "$GRID_INPUT_DIR/new" 2>/dev/null || echo volume is read-only; '
            'echo "$GRID_INPUT_DIR $GRID_OUTPUT_DIR"'
        )
        job = docker_spec(["sh", "-c", script])
        outcome = await runtime.run(job, dirs, driver_env(dirs), max_output=MAX_OUTPUT)
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "volume is read-only\n/volume /output\n")
        assert (dirs.output / "out.txt").read_text() == "input\n"
        assert (dirs.output / "sub" / "more.txt").read_text() == "nested\n"
        assert not (dirs.volume / "new").exists()

    async def test_environment_is_the_contract_with_container_paths(
        self, runtime: Runtime, dirs: JobDirs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The executor's variables do not leak; the host PATH gives way to the image's; HOME is /tmp."""
        monkeypatch.setenv("EXECUTOR_SECRET", "do-not-leak")
        job = docker_spec(["env"], env={"FOO": "bar"})
        outcome = await runtime.run(job, dirs, driver_env(dirs, FOO="bar"), max_output=MAX_OUTPUT)
        seen = dict(line.split("=", 1) for line in outcome.stdout.text().splitlines())
        seen.pop("HOSTNAME")  # set by the engine
        assert seen == {
            "FOO": "bar",
            "LANG": "C.UTF-8",
            "PATH": IMAGE_PATH,
            "HOME": "/tmp",
            "GRID_JOB_ID": "job-under-test",
            "GRID_INPUT_DIR": "/volume",
            "GRID_OUTPUT_DIR": "/output",
        }

    async def test_path_set_by_the_spec_is_kept(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Only the executor's PATH is dropped: one the client asked for reaches the job."""
        job = docker_spec(["sh", "-c", 'echo "$PATH"'], env={"PATH": "/bin:/opt/tool"})
        outcome = await runtime.run(job, dirs, driver_env(dirs, PATH="/bin:/opt/tool"), max_output=MAX_OUTPUT)
        assert outcome.stdout.text() == "/bin:/opt/tool\n"

    async def test_cpu_memory_and_pids_limits_are_set_in_the_container(self, runtime: Runtime, dirs: JobDirs) -> None:
        """The container's own cgroups carry the spec's limits (cgroup v1 here, v2 accepted)."""
        script = (
            "cd /sys/fs/cgroup; if [ -f memory.max ]; then cat memory.max pids.max cpu.max; "
            "else cat memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us; fi"
        )
        job = docker_spec(["sh", "-c", script], limits={"cpu": 0.5, "memory_mb": 64, "pids": 32})
        outcome = await self.run(runtime, dirs, job)
        assert outcome.stdout.text() in ("67108864\n32\n50000\n", "67108864\n32\n50000 100000\n")

    async def test_job_over_its_memory_limit_is_killed_and_marked_out_of_memory(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """Allocating past limits.memory_mb gets the OOM killer: exit 137 and out_of_memory."""
        job = docker_spec(
            ["python3", "-c", "b = bytearray(200 * 1024 * 1024); print('allocated')"],
            image=PYTHON,
            limits={"memory_mb": 64},
        )
        outcome = await self.run(runtime, dirs, job)
        assert outcome.out_of_memory
        assert (outcome.exit_code, outcome.stdout.text()) == (137, "")
        assert not outcome.timed_out

    async def test_pids_limit_stops_forking(self, runtime: Runtime, dirs: JobDirs) -> None:
        """With limits.pids = 16, forking fails with EAGAIN before the 16th process."""
        probe = (
            "import os, time\n"
            "n = 0\n"
            "try:\n"
            "    for _ in range(64):\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(10); os._exit(0)\n"
            "        n += 1\n"
            "except BlockingIOError:\n"
            "    print('blocked', n < 16)\n"
        )
        job = docker_spec(["python3", "-c", probe], image=PYTHON, limits={"pids": 16})
        outcome = await self.run(runtime, dirs, job)
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "blocked True\n")

    async def test_timeout_kills_the_container_and_removes_it(
        self, runtime: Runtime, dirs: JobDirs, docker_client: docker.DockerClient
    ) -> None:
        """At timing.execution the container is killed (exit 137) and gone when run() returns."""
        job = docker_spec(["sleep", "30"], execution=0.5)
        outcome = await runtime.run(job, dirs, driver_env(dirs, job_id="job-timeout"), max_output=MAX_OUTPUT)
        assert outcome.timed_out and not outcome.out_of_memory
        assert outcome.exit_code == 137
        assert outcome.duration_s < 2
        assert containers_of(docker_client, JOB_LABEL, "job-timeout") == []

    async def test_container_is_labelled_and_locked_down(
        self, dirs: JobDirs, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While the job runs, the engine shows its labels and every isolation option; cancelling removes it."""
        monkeypatch.setenv("GRID_MINER_HOTKEY", "the-miner")
        monkeypatch.setenv("GRID_FORKSERVER_ID", "the-forkserver")
        runtime = StartObserved(docker_client)
        job = docker_spec(["sleep", "30"], execution=10, limits={"cpu": 0.5, "memory_mb": 64, "pids": 32})
        task = asyncio.create_task(runtime.run(job, dirs, driver_env(dirs, job_id="job-labels"), max_output=100))
        container = await asyncio.wait_for(runtime.started, 5)
        attrs = docker_client.api.inspect_container(container.id)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        labels = attrs["Config"]["Labels"]  # the image's own labels come along
        assert (labels[EXECUTOR_LABEL], labels[JOB_LABEL]) == (str(os.getpid()), "job-labels")
        assert (labels[MINER_LABEL], labels[FORKSERVER_LABEL]) == ("the-miner", "the-forkserver")
        assert attrs["Config"]["User"] == "65534:65534"
        host = attrs["HostConfig"]
        assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"]) == ("none", True, ["ALL"])
        assert host["SecurityOpt"] == ["no-new-privileges"]
        assert (host["Memory"], host["MemorySwap"], host["NanoCpus"], host["PidsLimit"]) == (
            64 * 1024 * 1024,
            64 * 1024 * 1024,
            500_000_000,
            32,
        )
        assert host["LogConfig"]["Type"] == "none"
        assert list(host["Tmpfs"]) == ["/tmp"]
        assert sorted(host["Binds"]) == [f"{dirs.output}:/output:rw", f"{dirs.volume}:/volume:ro"]
        assert containers_of(docker_client, JOB_LABEL, "job-labels") == []

    async def test_large_output_is_streamed_and_counted_exactly(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Megabytes on both streams: the first max_output bytes are kept and every other byte is counted."""
        script = "head -c 8000000 /dev/zero; head -c 3000000 /dev/zero >&2"
        outcome = await self.run(runtime, dirs, docker_spec(["sh", "-c", script]), max_output=1000)
        assert outcome.exit_code == 0
        assert (outcome.stdout.dropped, outcome.stderr.dropped) == (7_999_000, 2_999_000)

    @pytest.mark.parametrize("delay", [0, 0.02, 0.1, 0.3])
    async def test_cancelling_run_at_any_moment_leaves_no_container(
        self, runtime: Runtime, dirs: JobDirs, delay: float
    ) -> None:
        """Cancelled while creating, attaching, starting or running: no container stays (checked after each test)."""
        task = asyncio.create_task(runtime.run(docker_spec(["sleep", "30"]), dirs, driver_env(dirs), max_output=100))
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    async def test_non_executable_command_is_command_not_found(self, runtime: Runtime, dirs: JobDirs) -> None:
        """A command that exists in the image but cannot be executed is COMMAND_NOT_FOUND too."""
        with pytest.raises(RuntimeFailure) as info:
            await self.run(runtime, dirs, docker_spec(["/etc/passwd"]))
        assert info.value.reason is FailureReason.COMMAND_NOT_FOUND
        assert str(info.value) == "command is not executable: /etc/passwd"

    async def test_image_missing_at_start_is_image_not_found(self, runtime: Runtime, dirs: JobDirs) -> None:
        """An image gone between prepare() and run() is still IMAGE_NOT_FOUND, never pulled."""
        with pytest.raises(RuntimeFailure) as info:
            await self.run(runtime, dirs, docker_spec(["true"], image="gridtest/no-such-image:latest"))
        assert info.value.reason is FailureReason.IMAGE_NOT_FOUND
        assert (
            str(info.value)
            == "image not found: gridtest/no-such-image:latest (the docker runtime does not pull images)"
        )


async def test_prepare_accepts_an_image_present_on_the_engine(docker_client: docker.DockerClient) -> None:
    """Both test images pass prepare()."""
    runtime = DockerRuntime(docker_client)
    await runtime.prepare(BUSYBOX)
    await runtime.prepare(PYTHON)


@pytest.mark.parametrize("image", ["gridtest/no-such-image:latest", "Not A Valid Reference!"])
async def test_prepare_refuses_a_missing_image(image: str, docker_client: docker.DockerClient) -> None:
    """A missing (or unusable) image is IMAGE_NOT_FOUND, with its name, before the job is reported ready."""
    with pytest.raises(RuntimeFailure) as info:
        await DockerRuntime(docker_client).prepare(image)
    assert info.value.reason is FailureReason.IMAGE_NOT_FOUND
    assert str(info.value) == f"image not found: {image} (the docker runtime does not pull images)"


class CountingImages:
    """The engine's image collection, counting the lookups made through it."""

    def __init__(self, images: Any) -> None:
        self.images, self.lookups = images, []

    def get(self, name: str) -> Any:
        self.lookups.append(name)
        return self.images.get(name)


async def test_warm_up_checks_the_preloaded_images_so_prepare_needs_no_engine_call(
    docker_client: docker.DockerClient,
) -> None:
    """A warm executor knows its preloaded images before the job comes; a missing one is still refused."""
    counting = CountingImages(docker_client.images)
    client = SimpleNamespace(images=counting)  # the real engine's images, seen through a counter
    runtime = DockerRuntime(client, preload=[BUSYBOX, "gridtest/not-preloaded:latest"])  # type: ignore[arg-type]
    await runtime.warm_up()
    assert counting.lookups == [BUSYBOX, "gridtest/not-preloaded:latest"]
    await runtime.prepare(BUSYBOX)
    assert len(counting.lookups) == 2, "a preloaded image is ready without another engine call"
    with pytest.raises(RuntimeFailure) as info:
        await runtime.prepare("gridtest/not-preloaded:latest")
    assert info.value.reason is FailureReason.IMAGE_NOT_FOUND


def test_preloaded_images_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRID_EXECUTOR_PRELOAD_IMAGES", f" {BUSYBOX}, ,{PYTHON} ")
    assert DockerRuntime().preload == [BUSYBOX, PYTHON]


async def test_prepare_refuses_a_spec_without_an_image() -> None:
    """The docker runtime cannot run a job that names no image: INVALID_SPEC."""
    with pytest.raises(RuntimeFailure) as info:
        await DockerRuntime().prepare(None)
    assert info.value.reason is FailureReason.INVALID_SPEC
    assert str(info.value) == "the docker runtime needs an image: the spec gives none"


async def test_prepare_without_an_engine_is_an_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable engine is the miner's problem (EngineUnavailable), not a job failure."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(EngineUnavailable) as info:
        await DockerRuntime().prepare(BUSYBOX)
    assert str(info.value).startswith("cannot reach the Docker engine at unix:///nonexistent/docker.sock: ")


def test_connect_names_the_engine_it_cannot_reach() -> None:
    """connect() says where it looked and how to start an engine."""
    with pytest.raises(EngineUnavailable) as info:
        connect("unix:///nonexistent/docker.sock")
    message = str(info.value)
    assert message.startswith("cannot reach the Docker engine at unix:///nonexistent/docker.sock: ")
    assert message.endswith("(start it, e.g. scripts/docker_engine.sh, and export DOCKER_HOST)")


def test_sweep_leftovers_removes_only_the_miners_own_containers_of_gone_executors(
    docker_client: docker.DockerClient,
) -> None:
    """Of this miner's containers, those of dead executors of this fork server and every one of an
    earlier fork server go; a live executor's stays, and so does every other miner's, whatever
    its pid names here (on a shared engine, pids are judged in another pid namespace)."""
    dead, miner, other = _dead_pid(), f"miner-{uuid.uuid4().hex}", f"other-{uuid.uuid4().hex}"
    labelled = {
        "dead": (miner, "now", str(dead)),
        "alive": (miner, "now", str(os.getpid())),
        "earlier": (miner, "before", str(os.getpid())),  # a live pid, but of the fork server before
        "no-pid": (miner, "now", "not-a-pid"),
        "other-miner": (other, "now", str(dead)),
        "other-earlier": (other, "before", str(dead)),
    }
    created = {
        name: docker_client.containers.create(
            BUSYBOX,
            ["sleep", "30"],
            labels={MINER_LABEL: who, FORKSERVER_LABEL: server, EXECUTOR_LABEL: pid},
            network_mode="none",
        )
        for name, (who, server, pid) in labelled.items()
    }
    try:
        created["dead"].start()  # a running leftover is removed too
        removed = sweep_leftovers(docker_client, alive=lambda pid: pid != dead, miner=miner, forkserver="now")
        assert sorted(removed) == sorted([created["dead"].id, created["earlier"].id])
        remaining = {c.id for c in docker_client.containers.list(all=True, filters={"label": EXECUTOR_LABEL})}
        assert not {created["dead"].id, created["earlier"].id} & remaining
        assert {created[name].id for name in ("alive", "no-pid", "other-miner", "other-earlier")} <= remaining
    finally:
        for container in created.values():
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


EXECUTOR_THAT_GETS_KILLED = """
import asyncio, sys
from pathlib import Path
from executor.runtimes.base import JobDirs
from executor.runtimes.docker import DockerRuntime
from protocol.spec import JobSpec

job = JobSpec(image=sys.argv[3], command=["sleep", "30"], timing={"execution": 30})
dirs = JobDirs.create(Path(sys.argv[1]))
asyncio.run(DockerRuntime().run(job, dirs, {"GRID_JOB_ID": sys.argv[2]}, max_output=100))
"""


def test_sweep_leftovers_removes_the_container_of_an_executor_killed_with_sigkill(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """kill -9 of an executor leaves its container running; the sweep at the next start removes it."""
    job_id, miner = f"job-sigkill-{os.getpid()}", f"miner-{uuid.uuid4().hex}"
    child = subprocess.Popen(
        [sys.executable, "-c", EXECUTOR_THAT_GETS_KILLED, str(tmp_path / "job"), job_id, BUSYBOX],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "GRID_MINER_HOTKEY": miner, "GRID_FORKSERVER_ID": "fs"},
    )
    try:
        deadline = time.monotonic() + 10
        while not docker_client.containers.list(filters={"label": f"{JOB_LABEL}={job_id}", "status": "running"}):
            assert time.monotonic() < deadline, "the executor did not start its container"
            assert child.poll() is None, "the executor ended early"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    (leftover,) = containers_of(docker_client, JOB_LABEL, job_id)
    # Only the killed executor counts as dead here: other sessions may share this engine.
    removed = sweep_leftovers(
        docker_client, alive=lambda pid: pid != child.pid or is_alive(pid), miner=miner, forkserver="fs"
    )
    assert leftover in removed
    assert containers_of(docker_client, JOB_LABEL, job_id) == []


def _dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_runtime_repr_names_the_user() -> None:
    assert repr(DockerRuntime(user="1000:1000")) == "<DockerRuntime user=1000:1000>"


def test_dirs_are_handed_to_the_job_user_without_following_links(tmp_path: Path) -> None:
    """As root, the volume tree and output dir go to 65534; a link's target keeps its owner."""
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    dirs = JobDirs.create(tmp_path / "job")
    target = tmp_path / "secret"
    target.write_text("x")
    (dirs.volume / "link").symlink_to(target)
    (dirs.volume / "file").write_text("y")
    _hand_over(dirs, "65534:65534")
    assert dirs.output.stat().st_uid == 65534
    assert (dirs.volume / "file").stat().st_uid == 65534
    assert (dirs.volume / "link").lstat().st_uid == 65534
    assert target.stat().st_uid == 0


class DockerExecutor(Executor):
    """test_driver's JobDriver harness, with the docker runtime and an image in job.initial."""

    def __init__(self, work_root: Path, image: str, client: docker.DockerClient) -> None:
        super().__init__(work_root)
        self.driver.runtime = DockerRuntime(client)
        self.image = image

    def default_spec(self) -> dict[str, Any]:
        return job("true", image=self.image)


async def test_driver_runs_a_docker_job_with_its_inputs_and_removes_everything(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """Through the driver: inline inputs reach /volume, the job finishes, no job dir or container stays."""
    executor = DockerExecutor(tmp_path, BUSYBOX, docker_client)
    script = 'cat "$GRID_INPUT_DIR/in.txt"; echo "$GRID_JOB_ID" > "$GRID_OUTPUT_DIR/id"; id -u'
    inputs = [{"kind": "inline", "path": "in.txt", "content_b64": "aW5wdXQK"}]  # "input\n"
    sent = await executor.run(job("sh", "-c", script, image=BUSYBOX, inputs=inputs))
    assert types(sent) == [ExecutorReady, VolumesReady, ExecutionDone, JobFinished]
    assert sent[-1].result.stdout == "input\n65534\n"  # type: ignore[attr-defined]


async def test_driver_reports_a_missing_image_before_ready(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """A missing image fails the job at executor_start, before executor.ready, with image_not_found."""
    executor = DockerExecutor(tmp_path, "gridtest/no-such-image:latest", docker_client)
    executor.start(executor.initial())
    sent = await executor.finish()
    assert types(sent) == [JobFailed]
    failure = only_failure(sent).failure
    assert (failure.reason, failure.stage) == ("image_not_found", Stage.EXECUTOR_START)


async def test_driver_reports_an_oom_kill_as_out_of_memory(tmp_path: Path, docker_client: docker.DockerClient) -> None:
    """A container killed for memory is reported failed with reason out_of_memory, not nonzero_exit."""
    executor = DockerExecutor(tmp_path, PYTHON, docker_client)
    command = ("python3", "-c", "b = bytearray(200 * 1024 * 1024)")
    sent = await executor.run(job(*command, image=PYTHON, limits={"memory_mb": 64}))
    failure = only_failure(sent).failure
    assert (failure.reason, failure.stage, failure.exit_code) == ("out_of_memory", Stage.EXECUTION, 137)
