"""The runtime contract (DESIGN.md §5).

:meth:`Runtime.run` owns what every runtime shares: the execution time limit, capped capture of
stdout and stderr, and the outcome; a runtime fills the hooks ``_start``, ``_stdout``,
``_stderr``, ``_wait``, ``_exit_code`` and ``_kill``, and may override :meth:`prepare` (make
sure the image is present) and :meth:`cleanup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from executor.errors import RuntimeFailure
from protocol.spec import JobSpec

__all__ = ["JobDirs", "OutputCapture", "RunOutcome", "Runtime", "RuntimeFailure"]

OUTPUT_DRAIN_S = 2.0
DIR_MODE = 0o700  # a job's directories: its executor's user only
TRUNCATION_MARKER = "\n[gridmarket: output truncated, {dropped} more bytes not shown]\n"


@dataclass
class JobDirs:
    """The job's private directories on the host."""

    root: Path
    volume: Path
    output: Path
    tmp: Path

    @property
    def stdout(self) -> Path:
        return self.root / "stdout"

    @property
    def stderr(self) -> Path:
        return self.root / "stderr"

    @property
    def scratch(self) -> Path:
        """Where downloads land before they are checked (never seen by the job)."""
        return self.root / "scratch"

    @classmethod
    def create(cls, root: Path) -> JobDirs:
        """The directories of a job under ``root`` (made here, or by ``mkdtemp``: private either way)."""
        dirs = cls(root=root, volume=root / "volume", output=root / "output", tmp=root / "tmp")
        root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for path in dirs._made:
            path.mkdir(mode=DIR_MODE)
        return dirs

    @property
    def _made(self) -> tuple[Path, ...]:
        return (self.volume, self.output, self.tmp, self.scratch)

    def reset(self) -> bool:
        """Empty these directories for the executor's next job, keeping the directories themselves.

        An executor serving job after job keeps its job directories: on ext4, making and removing
        five directories cost more CPU per trivial job than the rest of the executor's file work.
        ``False`` when they are not as :meth:`create` made them (a directory gone, replaced, handed
        to another user or opened to others, as the docker runtime does for its job's user) or
        could not be emptied: the caller then removes them and the next job gets fresh ones.
        Whatever the job left anywhere else inside ``root`` (``HOME`` for the process runtime) is
        removed.
        """
        own = os.geteuid()
        kept = {path.name for path in self._made}
        try:
            if not _private_dir(os.lstat(self.root), own):
                return False
            with os.scandir(self.root) as entries:
                for entry in entries:
                    if entry.name in kept:
                        if not _private_dir(entry.stat(follow_symlinks=False), own):
                            return False
                        kept.discard(entry.name)
                        _empty(entry.path)
                    elif entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path)
                    else:
                        os.unlink(entry.path)
        except OSError:
            return False
        return not kept  # one of them was removed by the job: make them afresh


def _private_dir(status: os.stat_result, owner: int) -> bool:
    return stat.S_ISDIR(status.st_mode) and stat.S_IMODE(status.st_mode) == DIR_MODE and status.st_uid == owner


def _empty(directory: str) -> None:
    """Remove everything inside ``directory`` (links removed, never followed); ``OSError`` if anything stays."""
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


@dataclass
class OutputCapture:
    """Keeps the first ``limit`` bytes of a stream in memory and counts the rest.

    With a ``file``, the whole stream is also written there (to be uploaded in full), up to
    ``file_limit`` bytes: past that, ``overflowed`` is set and ``on_overflow`` is called once,
    and the rest is only counted.
    """

    limit: int
    file: Path | None = None
    file_limit: int | None = None
    on_overflow: Callable[[], None] | None = None
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0
    total: int = 0
    overflowed: bool = False
    _fh: BinaryIO | None = field(default=None, repr=False)

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))
        self.total += len(chunk)
        if self.file is not None and not self.overflowed:
            if self.file_limit is not None and self.total > self.file_limit:
                self.overflowed = True
                if self.on_overflow is not None:
                    self.on_overflow()
                return
            if self._fh is None:
                self._fh = open(self.file, "wb")  # noqa: SIM115 - closed by close(), after the stream ends
            self._fh.write(chunk)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    @property
    def truncated(self) -> bool:
        return self.dropped > 0

    def text(self) -> str:
        text = self.data.decode("utf-8", errors="replace")
        if self.dropped:
            text += TRUNCATION_MARKER.format(dropped=self.dropped)
        return text

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        try:
            while chunk := await stream.read(65536):
                self.feed(chunk)
        finally:
            self.close()


@dataclass
class RunOutcome:
    exit_code: int | None
    stdout: OutputCapture
    stderr: OutputCapture
    duration_s: float
    timed_out: bool = False
    out_of_memory: bool = False
    terminated: bool = False

    @property
    def output_overflowed(self) -> bool:
        """Stdout or stderr went past the miner's limit (the job was killed for it)."""
        return self.stdout.overflowed or self.stderr.overflowed


class Runtime:
    """Base class: subclasses implement ``_start``, ``_wait`` and ``_kill``."""

    name = "base"

    async def warm_up(self) -> None:
        """Get ready for a job not known yet (engine connection, images): called while waiting."""

    async def prepare(self, image: str | None) -> None:
        """Make sure the job can start (image present …); raise :class:`RuntimeFailure` if not."""

    async def run(
        self,
        spec: JobSpec,
        dirs: JobDirs,
        env: dict[str, str],
        *,
        max_output: int,
        max_log: int | None = None,
        stop: asyncio.Event | None = None,
    ) -> RunOutcome:
        """Run the job until its main process exits or its execution time limit, capturing output.

        The job ends when its main process exits: whatever it left running is killed then
        (as a container ends with its first process). Cancelling this coroutine kills the job.
        With ``max_log``, each stream is also kept whole in ``dirs.stdout`` / ``dirs.stderr``, and
        a job writing more than ``max_log`` bytes to either is killed (``output_overflowed``).
        Setting ``stop`` ends the job early (``terminated``): a streaming job its client ended.
        """
        overflow = asyncio.Event()
        stdout, stderr = (
            OutputCapture(max_output, path if max_log is not None else None, max_log, overflow.set)
            for path in (dirs.stdout, dirs.stderr)
        )
        started = time.monotonic()
        # Even a cancel that lands while the process is being created must not orphan it.
        start = asyncio.ensure_future(self._start(spec, dirs, env))
        try:
            handle = await asyncio.shield(start)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                handle = await start
                await self._kill(handle)
                await self.cleanup(handle)
            raise
        readers = asyncio.gather(stdout.drain(self._stdout(handle)), stderr.drain(self._stderr(handle)))
        timed_out = False
        waits = [self._wait(handle), overflow.wait(), *([stop.wait()] if stop is not None else [])]
        try:
            try:
                async with asyncio.timeout(spec.timing.execution):
                    await _first(*waits)
            except TimeoutError:
                timed_out = True
            terminated = stop is not None and stop.is_set() and not overflow.is_set()
            await self._kill(handle)
            exit_code = await self._exit_code(handle)
            # Output still buffered in the pipes arrives now; a process that escaped the job's
            # group and holds them open is not waited for.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTPUT_DRAIN_S):
                    await asyncio.shield(readers)
        except BaseException:
            await self._kill(handle)
            raise
        finally:
            readers.cancel()
            with contextlib.suppress(BaseException):
                await readers
            await self.cleanup(handle)
        return RunOutcome(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            terminated=terminated,
            out_of_memory=self._was_out_of_memory(handle),
        )

    async def _start(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _start()")

    def _stdout(self, handle: Any) -> asyncio.StreamReader | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _stdout()")

    def _stderr(self, handle: Any) -> asyncio.StreamReader | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _stderr()")

    async def _wait(self, handle: Any) -> None:
        """Return when the job's main process has exited (not when its output closes)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _wait()")

    async def _exit_code(self, handle: Any) -> int | None:
        """The main process's exit status, once it exited and the rest of the job was killed."""
        raise NotImplementedError(f"{type(self).__name__} must implement _exit_code()")

    async def _kill(self, handle: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _kill()")

    def _was_out_of_memory(self, handle: Any) -> bool:
        return False

    async def cleanup(self, handle: Any) -> None:
        """Release whatever ``_start`` created; called once, whatever happened."""


async def _first(*waits: Awaitable[Any]) -> None:
    """Return when the first of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
