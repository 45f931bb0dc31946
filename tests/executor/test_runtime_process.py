"""The runtime contract, run against the process runtime (executor/runtimes/).

``RuntimeContract`` holds what every runtime must do through :meth:`Runtime.run`; a runtime's
test class subclasses it and sets ``runtime_name`` (the docker runtime can reuse it). Tests of
what only the process runtime does (rlimits, process groups, its environment) follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from executor.runtimes import RUNTIMES, RunOutcome, Runtime, RuntimeFailure, load_runtime
from executor.runtimes import process as process_runtime
from executor.runtimes.base import JobDirs, OutputCapture
from executor.runtimes.process import ProcessRuntime
from protocol.spec import JobSpec
from protocol.status import FailureReason

PY = sys.executable
MAX_OUTPUT = 64 * 1024


def spec(command: list[str], execution: float = 2.0, **fields: Any) -> JobSpec:
    return JobSpec(command=command, timing={"execution": execution}, **fields)


def is_alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (zombies waiting for a reaper count as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


async def wait_until_dead(pid: int, timeout: float = 1.0) -> bool:
    async with asyncio.timeout(timeout):
        while is_alive(pid):
            await asyncio.sleep(0.01)
    return True


class StartObserved(ProcessRuntime):
    """The process runtime, telling the test when _start() has handed the job to run()."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def _start(self, *args: Any) -> Any:
        handle = await super()._start(*args)
        self.started.set()
        return handle


# The three ways the process runtime sets a job's limits and death signal, best first.
LAUNCHERS = ["grid-launch", "setpriv+prlimit", "preexec_fn"]


def require_grid_launch() -> str:
    if process_runtime.GRID_LAUNCH is None:
        if os.environ.get("GRID_REQUIRE_LAUNCHER") == "1":
            pytest.fail("grid-launch is not built: scripts/build_launcher.sh")
        pytest.skip("grid-launch is not built (no C compiler): scripts/build_launcher.sh")
    return process_runtime.GRID_LAUNCH


def use_launcher(monkeypatch: pytest.MonkeyPatch, launcher: str) -> None:
    if launcher == "grid-launch":
        require_grid_launch()
        return
    monkeypatch.setattr(process_runtime, "GRID_LAUNCH", None)
    if launcher == "preexec_fn":
        monkeypatch.setattr(process_runtime, "SETPRIV", None)
    else:  # util-linux is essential on Debian: this case must not quietly become the preexec_fn
        assert process_runtime.SETPRIV is not None and process_runtime.PRLIMIT is not None


# A job that starts a background child, records its pid, then waits for it.
SPAWN_CHILD = ["sh", "-c", 'sleep 30 & echo $! > "$HOME/child.pid"; wait']


class RuntimeContract:
    """What every runtime does through Runtime.run()."""

    runtime_name = ""

    @pytest.fixture
    def runtime(self) -> Runtime:
        return load_runtime(self.runtime_name)

    @pytest.fixture
    def dirs(self, tmp_path: Path) -> JobDirs:
        return JobDirs.create(tmp_path / "job")

    async def run(self, runtime: Runtime, dirs: JobDirs, job: JobSpec, **options: Any) -> RunOutcome:
        env = options.pop("env", {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        return await asyncio.wait_for(
            runtime.run(job, dirs, env, max_output=options.pop("max_output", MAX_OUTPUT)), job.timing.execution + 3
        )

    async def test_successful_job_reports_exit_code_zero_and_both_streams(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """A job exiting 0 gives exit_code 0, its stdout and stderr, no timeout, no truncation."""
        outcome = await self.run(runtime, dirs, spec(["sh", "-c", "echo out; echo err >&2"]))
        assert outcome.exit_code == 0
        assert outcome.stdout.text() == "out\n"
        assert outcome.stderr.text() == "err\n"
        assert not outcome.timed_out and not outcome.out_of_memory
        assert not outcome.stdout.truncated and not outcome.stderr.truncated
        assert 0 < outcome.duration_s < 2

    async def test_failing_job_reports_its_non_zero_exit_code(self, runtime: Runtime, dirs: JobDirs) -> None:
        """A job's own exit code comes back as is, with its stderr."""
        outcome = await self.run(runtime, dirs, spec(["sh", "-c", "echo broken >&2; exit 3"]))
        assert outcome.exit_code == 3
        assert outcome.stderr.text() == "broken\n"
        assert not outcome.timed_out

    async def test_job_over_its_time_limit_is_killed_and_marked_timed_out(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """A job still running at timing.execution is killed; timed_out is set and output so far is kept."""
        outcome = await self.run(runtime, dirs, spec(["sh", "-c", "echo started; exec sleep 30"], execution=0.5))
        assert outcome.timed_out
        assert outcome.exit_code != 0
        assert outcome.stdout.text() == "started\n"
        assert 0.5 <= outcome.duration_s < 2

    async def test_output_past_max_output_is_truncated_with_a_marker(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Each stream keeps its first max_output bytes, then a marker counting what was dropped."""
        job = spec([PY, "-c", "import sys; sys.stdout.write('x' * 5000); sys.stderr.write('y' * 3000)"])
        outcome = await self.run(runtime, dirs, job, max_output=1000)
        assert outcome.exit_code == 0
        assert outcome.stdout.truncated and outcome.stderr.truncated
        assert outcome.stdout.text() == "x" * 1000 + "\n[gridmarket: output truncated, 4000 more bytes not shown]\n"
        assert outcome.stderr.text() == "y" * 1000 + "\n[gridmarket: output truncated, 2000 more bytes not shown]\n"

    async def test_output_exactly_at_max_output_is_not_truncated(self, runtime: Runtime, dirs: JobDirs) -> None:
        """max_output bytes fit; the marker appears only when something was dropped."""
        outcome = await self.run(runtime, dirs, spec([PY, "-c", "print('z' * 99)"]), max_output=100)
        assert outcome.stdout.text() == "z" * 99 + "\n"
        assert not outcome.stdout.truncated

    async def test_missing_command_is_command_not_found(self, runtime: Runtime, dirs: JobDirs) -> None:
        """A command that does not exist raises RuntimeFailure with FailureReason.COMMAND_NOT_FOUND."""
        with pytest.raises(RuntimeFailure) as info:
            await self.run(runtime, dirs, spec(["gridmarket-no-such-command", "x"]))
        assert info.value.reason is FailureReason.COMMAND_NOT_FOUND
        assert str(info.value) == "command not found: gridmarket-no-such-command"


class TestProcessRuntime(RuntimeContract):
    runtime_name = "process"

    async def test_directory_as_command_is_command_not_found(self, runtime: Runtime, dirs: JobDirs) -> None:
        """A command that exists but cannot be executed is also COMMAND_NOT_FOUND."""
        with pytest.raises(RuntimeFailure) as info:
            await self.run(runtime, dirs, spec([str(dirs.tmp)]))
        assert info.value.reason is FailureReason.COMMAND_NOT_FOUND
        assert str(info.value) == f"command is not executable: {dirs.tmp}"

    async def test_timeout_kills_the_whole_process_group(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Children the job started die with it when the time limit hits."""
        outcome = await self.run(runtime, dirs, spec(SPAWN_CHILD, execution=0.5))
        assert outcome.timed_out
        assert outcome.exit_code == -signal.SIGKILL
        child = int((dirs.root / "child.pid").read_text())
        assert await wait_until_dead(child)

    async def test_cancelling_run_kills_the_whole_process_group(self, dirs: JobDirs) -> None:
        """Cancelling Runtime.run (the executor stopping a job) kills the job and its children."""
        runtime = StartObserved()
        task = asyncio.create_task(runtime.run(spec(SPAWN_CHILD, execution=10), dirs, {}, max_output=MAX_OUTPUT))
        pid_file = dirs.root / "child.pid"
        async with asyncio.timeout(2):
            await runtime.started.wait()
            while not (pid_file.exists() and pid_file.read_text().strip()):
                await asyncio.sleep(0.01)
        child = int(pid_file.read_text())
        assert is_alive(child)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await wait_until_dead(child)
        del task
        gc.collect()  # finalise the run's leftovers here, not inside some later import

    async def test_cancelling_run_while_the_process_is_starting_kills_it_too(self, dirs: JobDirs) -> None:
        """A cancel during start-up still leaves no process of the job behind."""
        loop = asyncio.get_running_loop()
        spawned: asyncio.Queue[Any] = asyncio.Queue()
        real_subprocess_exec = loop.subprocess_exec

        async def slow_to_return(*args: Any, **kwargs: Any) -> Any:
            # Widen the window between the process starting and create_subprocess_exec returning.
            transport, protocol = await real_subprocess_exec(*args, **kwargs)
            spawned.put_nowait(transport)
            await asyncio.sleep(10)
            return transport, protocol

        loop.subprocess_exec = slow_to_return  # type: ignore[method-assign]
        try:
            task = asyncio.create_task(
                load_runtime(self.runtime_name).run(spec(SPAWN_CHILD, execution=10), dirs, {}, max_output=100)
            )
            transport = await asyncio.wait_for(spawned.get(), 2)
        finally:
            del loop.subprocess_exec
        pid_file = dirs.root / "child.pid"
        try:
            async with asyncio.timeout(2):
                while not (pid_file.exists() and pid_file.read_text().strip()):
                    await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert await wait_until_dead(int(pid_file.read_text()), timeout=0.5)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(transport.get_pid(), signal.SIGKILL)
            transport.close()

    async def test_cancelling_run_leaves_no_unretrieved_future(self, runtime: Runtime, dirs: JobDirs) -> None:
        """Cancelling a job is routine; it must not leave futures for asyncio to complain about."""
        complaints: list[str] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: complaints.append(context["message"]))
        try:
            task = asyncio.create_task(runtime.run(spec(["sleep", "30"], execution=10), dirs, {}, max_output=100))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            del task
            gc.collect()
            await asyncio.sleep(0)
        finally:
            loop.set_exception_handler(None)
        assert complaints == []

    async def test_children_left_behind_after_a_clean_exit_are_killed(self, runtime: Runtime, dirs: JobDirs) -> None:
        """A child that detached its output outlives nothing: cleanup kills the job's process group."""
        job = spec(["sh", "-c", 'sleep 30 >/dev/null 2>&1 & echo $! > "$HOME/child.pid"'])
        outcome = await self.run(runtime, dirs, job)
        assert outcome.exit_code == 0 and not outcome.timed_out
        assert await wait_until_dead(int((dirs.root / "child.pid").read_text()))

    async def test_job_that_exits_while_a_child_holds_its_output_is_not_a_timeout(
        self, runtime: Runtime, dirs: JobDirs
    ) -> None:
        """The job ends when its main process exits; leftover children are killed, not waited for."""
        job = spec(["sh", "-c", 'sleep 30 & echo $! > "$HOME/child.pid"; echo done'], execution=0.5)
        outcome = await self.run(runtime, dirs, job)
        child = int((dirs.root / "child.pid").read_text())
        assert await wait_until_dead(child)
        assert outcome.exit_code == 0
        assert not outcome.timed_out
        assert outcome.duration_s < 0.4

    async def test_memory_limit_makes_an_oversized_allocation_fail(self, runtime: Runtime, dirs: JobDirs) -> None:
        """limits.memory_mb caps the address space: allocating past it fails the job with a non-zero exit."""
        job = spec([PY, "-c", "b = bytearray(400 * 1024 * 1024); print('allocated')"], limits={"memory_mb": 128})
        outcome = await self.run(runtime, dirs, job)
        assert outcome.exit_code not in (0, None)
        assert outcome.stdout.text() == ""
        assert "MemoryError" in outcome.stderr.text()

    async def test_allocation_within_the_memory_limit_succeeds(self, runtime: Runtime, dirs: JobDirs) -> None:
        """The same job fits once the limit is raised (the failure above is the limit's doing)."""
        job = spec([PY, "-c", "b = bytearray(40 * 1024 * 1024); print('allocated')"], limits={"memory_mb": 512})
        outcome = await self.run(runtime, dirs, job)
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "allocated\n")

    async def test_environment_is_only_what_was_passed_plus_home_and_tmpdir(
        self, runtime: Runtime, dirs: JobDirs, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The executor's own environment does not leak; HOME and TMPDIR point into the job's directories."""
        monkeypatch.setenv("EXECUTOR_SECRET", "do-not-leak")
        env_binary = shutil.which("env")
        assert env_binary is not None
        outcome = await self.run(runtime, dirs, spec([env_binary]), env={"FOO": "bar", "HOME": "/elsewhere"})
        seen = dict(line.split("=", 1) for line in outcome.stdout.text().splitlines())
        assert seen == {"FOO": "bar", "HOME": str(dirs.root), "TMPDIR": str(dirs.tmp)}

    async def test_job_runs_in_its_own_directory(self, runtime: Runtime, dirs: JobDirs) -> None:
        """The working directory is the job's root."""
        outcome = await self.run(runtime, dirs, spec(["pwd"]))
        assert outcome.stdout.text() == f"{dirs.root}\n"

    async def test_job_gets_no_stdin(self, runtime: Runtime, dirs: JobDirs) -> None:
        """stdin is /dev/null, so a job reading it gets EOF instead of hanging."""
        outcome = await self.run(runtime, dirs, spec(["cat"]))
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "")

    @pytest.mark.parametrize("launcher", LAUNCHERS)
    @pytest.mark.parametrize("gpu", [False, True], ids=["cpu", "gpu"])
    async def test_the_job_runs_under_its_rlimits_whichever_launcher(
        self, runtime: Runtime, dirs: JobDirs, monkeypatch: pytest.MonkeyPatch, launcher: str, gpu: bool
    ) -> None:
        """Address space (not for a GPU job), CPU seconds, core size and file size, set by
        grid-launch, util-linux's wrappers or a preexec_fn: the job sees the same limits."""
        use_launcher(monkeypatch, launcher)
        job = spec(["cat", "/proc/self/limits"], execution=3.0, limits={"memory_mb": 256, "cpu": 1.0})
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **({"GRID_GPUS": "GPU-fake-0"} if gpu else {})}
        outcome = await self.run(runtime, dirs, job, env=env)
        assert outcome.exit_code == 0, outcome.stderr.text()
        limits = {line[:26].strip(): line[26:].split()[:2] for line in outcome.stdout.text().splitlines()[1:]}
        address_space = ["unlimited"] * 2 if gpu else [str(256 * 1024 * 1024)] * 2
        assert limits["Max address space"] == address_space
        assert limits["Max cpu time"] == ["4", "5"]  # ceil(3 s × 1 cpu) + 1, hard one more
        assert limits["Max core file size"] == ["0", "0"]
        assert limits["Max file size"] == [str(1024**3)] * 2

    async def test_a_relative_command_is_found_in_the_job_directory_and_along_the_jobs_path(
        self, runtime: Runtime, dirs: JobDirs, tmp_path: Path
    ) -> None:
        """Commands are looked up as subprocess would: ``./x`` from the job's directory, a bare
        name along the PATH the job was given (not the executor's)."""
        script = dirs.root / "hello.sh"
        script.write_text("#!/bin/sh\necho hello from $0\n")
        script.chmod(0o755)
        outcome = await self.run(runtime, dirs, spec(["./hello.sh"]))
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "hello from ./hello.sh\n")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "only-here").write_text("#!/bin/sh\necho found\n")
        (bin_dir / "only-here").chmod(0o755)
        outcome = await self.run(runtime, dirs, spec(["only-here"]), env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
        assert (outcome.exit_code, outcome.stdout.text()) == (0, "found\n")
        with pytest.raises(RuntimeFailure) as info:
            await self.run(runtime, dirs, spec(["only-here"]))
        assert info.value.reason is FailureReason.COMMAND_NOT_FOUND

    @pytest.mark.parametrize("launcher", LAUNCHERS)
    async def test_the_job_dies_with_its_executor(self, tmp_path: Path, launcher: str) -> None:
        """PR_SET_PDEATHSIG: an executor killed outright (SIGKILL) takes its job with it."""
        if launcher == "grid-launch":
            require_grid_launch()
        pid_file = tmp_path / "job.pid"
        code = (
            "import asyncio, os, sys\n"
            "from executor.runtimes import process\n"
            f"if {launcher!r} != 'grid-launch': process.GRID_LAUNCH = None\n"
            f"if {launcher!r} == 'preexec_fn': process.SETPRIV = None\n"
            "from executor.runtimes.process import ProcessRuntime\n"
            "from executor.runtimes.base import JobDirs\n"
            "from protocol.spec import JobSpec\n"
            "from pathlib import Path\n"
            f"job = JobSpec(command=['sh', '-c', 'echo $$ > {pid_file}; exec sleep 30'], timing={{'execution': 60}})\n"
            f"dirs = JobDirs.create(Path({str(tmp_path / 'job')!r}))\n"
            "asyncio.run(ProcessRuntime().run(job, dirs, {'PATH': os.environ['PATH']}, max_output=1024))\n"
        )
        executor = await asyncio.create_subprocess_exec(PY, "-c", code, cwd=Path(__file__).resolve().parents[2])
        try:
            async with asyncio.timeout(20):
                while not pid_file.exists() or not pid_file.read_text().strip():
                    await asyncio.sleep(0.02)
            job_pid = int(pid_file.read_text())
            assert is_alive(job_pid)
        finally:
            executor.kill()
            await executor.wait()
        assert await wait_until_dead(job_pid, timeout=5)


def test_grid_launch_refuses_bad_arguments_and_runs_nothing(tmp_path: Path) -> None:
    launch, marker = require_grid_launch(), tmp_path / "ran"
    touch = ["--", "touch", str(marker)]
    parent = str(os.getpid())
    for arguments in (
        [],
        [parent, "0", "5", "6", "100"],  # no command
        [parent, "0", "5", "6", "100", "touch", str(marker)],  # no "--"
        ["x", "0", "5", "6", "100", *touch],
        [parent, "-1", "5", "6", "100", *touch],
        [parent, "0", "7", "6", "100", *touch],  # soft CPU limit above the hard one
        [parent, "0", "5", "6", "1e3", *touch],
    ):
        answer = subprocess.run([launch, *arguments], capture_output=True, text=True)
        assert answer.returncode == 125, arguments
        assert answer.stderr.startswith("usage: grid-launch"), answer.stderr
    assert not marker.exists()


def test_grid_launch_runs_nothing_once_its_parent_is_gone(tmp_path: Path) -> None:
    """The death signal is asked for, then the parent checked: a parent already gone (here: not
    the one named) would never send it, so the job is not run (126)."""
    launch, marker = require_grid_launch(), tmp_path / "ran"
    answer = subprocess.run([launch, "1", "0", "5", "6", "100", "--", "touch", str(marker)])
    assert answer.returncode == 126 and not marker.exists()
    ran = subprocess.run([launch, str(os.getpid()), "0", "5", "6", "100", "--", "touch", str(marker)])
    assert ran.returncode == 0 and marker.exists()


def test_grid_launch_that_cannot_exec_says_so(tmp_path: Path) -> None:
    answer = subprocess.run(
        [require_grid_launch(), str(os.getpid()), "0", "5", "6", "100", "--", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert answer.returncode == 127
    assert answer.stderr == f"grid-launch: cannot execute {tmp_path / 'missing'}: No such file or directory\n"


def test_job_dirs_are_created_private(tmp_path: Path) -> None:
    """JobDirs.create makes volume, output and tmp with mode 0700."""
    dirs = JobDirs.create(tmp_path / "job")
    for path in (dirs.volume, dirs.output, dirs.tmp):
        assert path.is_dir()
        assert path.stat().st_mode & 0o777 == 0o700


def test_output_capture_counts_what_it_drops_across_chunks() -> None:
    """The limit applies to the stream as a whole, not per chunk."""
    capture = OutputCapture(limit=5)
    for chunk in (b"abc", b"def", b"gh"):
        capture.feed(chunk)
    assert bytes(capture.data) == b"abcde"
    assert capture.dropped == 3


def test_output_capture_decodes_invalid_utf8_with_replacement() -> None:
    """Binary output never breaks the report: undecodable bytes become U+FFFD."""
    capture = OutputCapture(limit=10)
    capture.feed(b"ok\xff")
    assert capture.text() == "ok\ufffd"


def test_load_runtime_by_alias_and_by_dotted_path() -> None:
    """'process' and its full dotted path both give a ProcessRuntime."""
    assert isinstance(load_runtime("process"), ProcessRuntime)
    assert isinstance(load_runtime(RUNTIMES["process"]), ProcessRuntime)


def test_unknown_runtime_name_suggests_the_closest_alias() -> None:
    """A misspelt alias raises ValueError with the known names and a 'did you mean' hint."""
    with pytest.raises(ValueError) as info:
        load_runtime("proces")
    assert str(info.value) == "unknown runtime 'proces'; did you mean 'process'? known: docker, process"


async def test_runtime_hooks_missing_from_a_subclass_are_named(tmp_path: Path) -> None:
    """The base class names the hook a runtime forgot to implement."""

    class Incomplete(Runtime):
        pass

    with pytest.raises(NotImplementedError, match=r"Incomplete must implement _start\(\)"):
        await Incomplete().run(spec(["true"]), JobDirs.create(tmp_path / "job"), {}, max_output=1)
