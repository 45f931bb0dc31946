"""The runtime contract (DESIGN.md §5).

:meth:`Runtime.run` owns what every runtime shares: the execution time limit, capped capture of
stdout and stderr, and the outcome; a runtime fills the hooks ``_start``, ``_wait``, ``_kill``
and may override :meth:`prepare` (make sure the image is present) and :meth:`cleanup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.spec import JobSpec
from protocol.status import FailureReason

__all__ = ["JobDirs", "OutputCapture", "RunOutcome", "Runtime", "RuntimeFailure"]

TRUNCATION_MARKER = "\n[gridmarket: output truncated, {dropped} more bytes not shown]\n"


class RuntimeFailure(Exception):
    """The job cannot run: ``reason`` is a :class:`FailureReason`."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class JobDirs:
    """The job's private directories on the host."""

    root: Path
    volume: Path
    output: Path
    tmp: Path

    @classmethod
    def create(cls, root: Path) -> JobDirs:
        dirs = cls(root=root, volume=root / "volume", output=root / "output", tmp=root / "tmp")
        for path in (dirs.volume, dirs.output, dirs.tmp):
            path.mkdir(mode=0o700, parents=True)
        return dirs


@dataclass
class OutputCapture:
    """Keeps the first ``limit`` bytes of a stream and counts the rest."""

    limit: int
    data: bytearray = field(default_factory=bytearray)
    dropped: int = 0

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]
        self.dropped += max(0, len(chunk) - max(room, 0))

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
        while chunk := await stream.read(65536):
            self.feed(chunk)


@dataclass
class RunOutcome:
    exit_code: int | None
    stdout: OutputCapture
    stderr: OutputCapture
    duration_s: float
    timed_out: bool = False
    out_of_memory: bool = False


class Runtime:
    """Base class: subclasses implement ``_start``, ``_wait`` and ``_kill``."""

    name = "base"

    async def prepare(self, image: str | None) -> None:
        """Make sure the job can start (image present …); raise :class:`RuntimeFailure` if not."""

    async def run(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str], *, max_output: int) -> RunOutcome:
        """Run the job to completion or until its execution time limit, capturing its output."""
        stdout, stderr = OutputCapture(max_output), OutputCapture(max_output)
        started = time.monotonic()
        handle = await self._start(spec, dirs, env)
        readers = asyncio.gather(
            stdout.drain(self._stdout(handle)), stderr.drain(self._stderr(handle)), return_exceptions=True
        )
        timed_out = False
        try:
            async with asyncio.timeout(spec.timing.execution):
                exit_code = await self._wait(handle)
                await readers
        except TimeoutError:
            timed_out = True
            await self._kill(handle)
            exit_code = await self._wait(handle)
            readers.cancel()
            with contextlib.suppress(BaseException):
                await readers
        except BaseException:
            await self._kill(handle)
            readers.cancel()
            raise
        finally:
            await self.cleanup(handle)
        return RunOutcome(
            exit_code=exit_code,
            stdout=stdout,
            stderr=stderr,
            duration_s=time.monotonic() - started,
            timed_out=timed_out,
            out_of_memory=self._was_out_of_memory(handle),
        )

    async def _start(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str]) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _start()")

    def _stdout(self, handle: Any) -> asyncio.StreamReader | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _stdout()")

    def _stderr(self, handle: Any) -> asyncio.StreamReader | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _stderr()")

    async def _wait(self, handle: Any) -> int | None:
        raise NotImplementedError(f"{type(self).__name__} must implement _wait()")

    async def _kill(self, handle: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _kill()")

    def _was_out_of_memory(self, handle: Any) -> bool:
        return False

    async def cleanup(self, handle: Any) -> None:
        """Release whatever ``_start`` created; called once, whatever happened."""
