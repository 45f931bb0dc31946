"""The docker runtime: each job runs in its own container (DESIGN.md §5). The production runtime.

Features:

* Images must be present on the engine: :meth:`DockerRuntime.prepare` checks, and nothing is
  ever pulled (miners preload the images they serve). A warm executor connects to the engine and
  checks the images of ``GRID_EXECUTOR_PRELOAD_IMAGES`` before its job arrives
  (:meth:`DockerRuntime.warm_up`), so a job for one of them starts without an engine round trip. A missing image is
  ``FailureReason.IMAGE_NOT_FOUND``; a spec without an image is ``INVALID_SPEC``.
* Isolation: network ``none``, a read-only root filesystem with a tmpfs ``/tmp`` (as large as
  the memory limit, and counted against it), all capabilities dropped, ``no-new-privileges``,
  a non-root user (``65534:65534``, nobody).
* Limits from the spec: ``memory_mb`` (memory and memory+swap alike), ``cpu`` (CFS quota, kept
  between the engine's minimum of 0.01 and this machine's cores) and ``pids``. A kill by the
  OOM killer sets ``out_of_memory``.
* Directories: the job's input directory is mounted read-only at ``/volume`` and its output
  directory writable at ``/output``; both are handed to the job's user first (``chown``,
  never following links, when the executor runs as root; else opened up with ``chmod``).
* Environment: the job contract and the spec's variables, with ``GRID_INPUT_DIR=/volume``,
  ``GRID_OUTPUT_DIR=/output`` and ``HOME=/tmp``. The executor's ``PATH`` is dropped (it names
  host directories; the image's own ``PATH`` applies) unless the spec sets one.
* Output: stdout and stderr are attached before the container starts and streamed, separately,
  to :meth:`Runtime.run`, which keeps a capped part. The engine keeps no copy (log driver
  ``none``), so a chatty job cannot fill the engine's disk; ``docker logs`` shows nothing.
* A command missing from the image (exit 127 at start) or not executable (126) is
  ``FailureReason.COMMAND_NOT_FOUND``.
* GPUs: a GPU executor's job (``GRID_GPUS`` in its contract) gets exactly its devices through a
  device request (driver ``nvidia``, those UUIDs, capabilities ``gpu``, ``compute``, ``utility``),
  with the same isolation as any job. :meth:`DockerRuntime.prepare` of a GPU executor first checks
  that the engine has the NVIDIA container runtime: without it the job would run without its GPU,
  so its absence is :class:`~executor.errors.GpuUnavailable` at ``executor_start`` (docs/gpu.md).
* Cleanup: the container is removed (forced) whatever happened. Containers carry the labels
  ``gridmarket.executor`` (the executor's pid), ``gridmarket.job`` (``GRID_JOB_ID``),
  ``gridmarket.miner`` (``GRID_MINER_HOTKEY``) and ``gridmarket.forkserver`` (the id of the fork
  server that forked the executor, ``GRID_FORKSERVER_ID``), so that :func:`sweep_leftovers` can
  remove those of executors that died without cleaning up, and only the miner's own.

Options (keyword arguments of :class:`DockerRuntime`):

* ``client``: a ``docker.DockerClient``; default, one made on first use from ``DOCKER_HOST``
  (:func:`executor.runtimes.docker_client.connect`), after the executor has forked.
* ``user``: the ``uid:gid`` jobs run as; default ``65534:65534``.
* ``gpus``: the executor's GPUs (UUIDs); default ``GRID_EXECUTOR_GPUS``.

The docker package is blocking: every engine call runs in a worker thread, and one daemon
thread per job reads the attached output into asyncio stream readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import docker
from docker.errors import APIError, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types.daemon import CancellableStream

from executor.errors import GpuUnavailable
from executor.gpus import assigned
from executor.runtimes.base import OUTPUT_DRAIN_S, JobDirs, Runtime, RuntimeFailure
from executor.runtimes.docker_client import connect
from protocol.spec import JobSpec
from protocol.status import FailureReason

__all__ = ["EXECUTOR_LABEL", "FORKSERVER_LABEL", "JOB_LABEL", "MINER_LABEL", "DockerRuntime", "sweep_leftovers"]

log = logging.getLogger("grid.executor")

EXECUTOR_LABEL = "gridmarket.executor"
JOB_LABEL = "gridmarket.job"
MINER_LABEL = "gridmarket.miner"
FORKSERVER_LABEL = "gridmarket.forkserver"
VOLUME_DIR = "/volume"
OUTPUT_DIR = "/output"
JOB_HOME = "/tmp"
# Exit statuses the engine gives a container whose command could not be executed.
EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126
MIN_CPUS = 0.01  # the engine refuses a smaller quota
GPU_CAPABILITIES = ["gpu", "compute", "utility"]
NO_NVIDIA_RUNTIME = (
    "the Docker engine has no NVIDIA container runtime: install the NVIDIA Container Toolkit, "
    "run `nvidia-ctk runtime configure --runtime=docker` and restart the engine (docs/gpu.md)"
)


@dataclass
class _Job:
    """A started container and what the runtime learns about it."""

    container: Container
    stdout: asyncio.StreamReader
    stderr: asyncio.StreamReader
    exit_status: int | None = None
    out_of_memory: bool = False
    pump: threading.Thread | None = field(default=None, repr=False)
    exited: asyncio.Future[dict[str, Any]] | None = field(default=None, repr=False)


class DockerRuntime(Runtime):
    """Runs each job in a locked-down container of the spec's image."""

    name = "docker"

    def __init__(
        self,
        client: docker.DockerClient | None = None,
        *,
        user: str = "65534:65534",
        preload: Iterable[str] | None = None,
        gpus: Iterable[str] | None = None,
    ) -> None:
        self._client = client
        self.gpus = tuple(gpus) if gpus is not None else assigned()
        self._gpu_runtime_checked = False
        self._owns_client = client is None
        self.user = user
        if preload is None:
            preload = os.environ.get("GRID_EXECUTOR_PRELOAD_IMAGES", "").split(",")
        self.preload = [image.strip() for image in preload if image.strip()]
        self._present: set[str] = set()

    def __repr__(self) -> str:
        return f"<DockerRuntime user={self.user}>"

    async def client(self) -> docker.DockerClient:
        """The engine client, made (and pinged) on first use."""
        if self._client is None:
            self._client = await asyncio.to_thread(connect)
        return self._client

    def close(self) -> None:
        """Close the engine client if this runtime made it (its connections otherwise last until exit)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def warm_up(self) -> None:
        """While waiting for a job: connect to the engine and check the preloaded images once."""
        client = await self.client()
        for image in self.preload:
            try:
                await asyncio.to_thread(client.images.get, image)
            except APIError:
                log.warning("preloaded image %s is not on the engine", image)
            else:
                self._present.add(image)

    async def prepare(self, image: str | None) -> None:
        """Check that ``image`` is present on the engine; it is never pulled.

        Raises:
            RuntimeFailure: ``INVALID_SPEC`` without an image, ``IMAGE_NOT_FOUND`` when absent.
            EngineUnavailable: the engine does not answer (an infrastructure failure).
        """
        if not image:
            raise RuntimeFailure(FailureReason.INVALID_SPEC, "the docker runtime needs an image: the spec gives none")
        if self.gpus and not self._gpu_runtime_checked:
            await self._check_gpu_runtime()
        if image in self._present:
            return  # checked while warming up: the job starts without an engine round trip
        client = await self.client()
        try:
            await asyncio.to_thread(client.images.get, image)
        except APIError as exc:
            if exc.status_code not in (400, 404):
                raise
            raise _image_not_found(image) from None

    async def _check_gpu_runtime(self) -> None:
        """Raises :class:`GpuUnavailable` when the engine cannot give a container its GPUs."""
        client = await self.client()
        info = await asyncio.to_thread(client.info)
        if "nvidia" not in (info.get("Runtimes") or {}):
            raise GpuUnavailable(NO_NVIDIA_RUNTIME)
        self._gpu_runtime_checked = True

    async def _start(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str]) -> _Job:
        client = await self.client()
        loop = asyncio.get_running_loop()
        stdout, stderr = asyncio.StreamReader(), asyncio.StreamReader()
        options = self._container_options(spec, dirs, env)
        container, stream = await asyncio.to_thread(self._create, client, spec, dirs, options)
        job = _Job(container=container, stdout=stdout, stderr=stderr)
        job.pump = threading.Thread(
            target=_pump, args=(stream, loop, stdout, stderr), name=f"docker-output-{container.short_id}", daemon=True
        )
        job.pump.start()
        try:
            await asyncio.to_thread(container.start)
        except APIError as exc:
            failure = await asyncio.to_thread(_start_failure, container, spec, exc)
            await self.cleanup(job)
            raise failure from None
        except BaseException:
            await self.cleanup(job)
            raise
        return job

    def _container_options(self, spec: JobSpec, dirs: JobDirs, env: dict[str, str]) -> dict[str, Any]:
        memory = spec.limits.memory_mb * 1024 * 1024
        cpus = min(max(spec.limits.cpu, MIN_CPUS), os.cpu_count() or 1)
        return {
            "environment": _container_env(spec, env),
            "labels": {
                EXECUTOR_LABEL: str(os.getpid()),
                JOB_LABEL: env.get("GRID_JOB_ID", ""),
                MINER_LABEL: os.environ.get("GRID_MINER_HOTKEY", ""),
                FORKSERVER_LABEL: os.environ.get("GRID_FORKSERVER_ID", ""),
            },
            "user": self.user,
            # A streaming job serves its gateway on the host's loopback (PORT); a batch job has no network.
            "network_mode": "host" if spec.streaming else "none",
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={spec.limits.memory_mb}m,mode=1777"},
            "volumes": {
                str(dirs.volume): {"bind": VOLUME_DIR, "mode": "ro"},
                str(dirs.output): {"bind": OUTPUT_DIR, "mode": "rw"},
            },
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(cpus * 1e9),
            "pids_limit": spec.limits.pids,
            "log_config": docker.types.LogConfig(type=docker.types.LogConfig.types.NONE),
            "stdin_open": False,
            **_gpu_options(env),
        }

    def _create(
        self, client: docker.DockerClient, spec: JobSpec, dirs: JobDirs, options: dict[str, Any]
    ) -> tuple[Container, CancellableStream]:
        """Create the container and attach to its output before it starts (blocking)."""
        _hand_over(dirs, self.user)
        try:
            container = client.containers.create(spec.image, spec.command, **options)
        except ImageNotFound:
            raise _image_not_found(str(spec.image)) from None
        try:
            stream = client.api.attach(container.id, stdout=True, stderr=True, stream=True, demux=True)
        except BaseException:
            with contextlib.suppress(APIError):
                container.remove(force=True)
            raise
        return container, stream

    def _stdout(self, handle: _Job) -> asyncio.StreamReader:
        return handle.stdout

    def _stderr(self, handle: _Job) -> asyncio.StreamReader:
        return handle.stderr

    def _exited(self, handle: _Job) -> asyncio.Future[dict[str, Any]]:
        """One engine wait per container, shared by _wait, _exit_code and cleanup (after start)."""
        if handle.exited is None:
            handle.exited = asyncio.ensure_future(asyncio.to_thread(handle.container.wait))
        return handle.exited

    async def _wait(self, handle: _Job) -> None:
        result = await asyncio.shield(self._exited(handle))
        handle.exit_status = result["StatusCode"]

    async def _exit_code(self, handle: _Job) -> int | None:
        container = handle.container
        result = await asyncio.shield(self._exited(handle))
        await asyncio.to_thread(container.reload)
        # Read now: the container is gone by the time run() asks _was_out_of_memory().
        handle.out_of_memory = bool(container.attrs["State"].get("OOMKilled"))
        handle.exit_status = result["StatusCode"]
        return handle.exit_status

    async def _kill(self, handle: _Job) -> None:
        if handle.exit_status is not None:
            return  # exited by itself: the container's other processes went with it
        with contextlib.suppress(APIError):  # 409 when it has just exited, 404 when gone
            await asyncio.to_thread(handle.container.kill)

    def _was_out_of_memory(self, handle: _Job) -> bool:
        return handle.out_of_memory

    async def cleanup(self, handle: _Job) -> None:
        # Runs in its thread to the end even if this coroutine is cancelled.
        await asyncio.to_thread(_remove, handle.container)
        # The removal ends the engine's wait and the output stream: no thread outlives the job.
        if handle.exited is not None:
            with contextlib.suppress(Exception):
                await handle.exited
        if handle.pump is not None:
            await asyncio.to_thread(handle.pump.join, OUTPUT_DRAIN_S)


def _image_not_found(image: str) -> RuntimeFailure:
    return RuntimeFailure(
        FailureReason.IMAGE_NOT_FOUND, f"image not found: {image} (the docker runtime does not pull images)"
    )


def _gpu_options(env: dict[str, str]) -> dict[str, Any]:
    """The device request that gives the container the job's GPUs (``GRID_GPUS``), and those alone."""
    gpus = [uuid for uuid in env.get("GRID_GPUS", "").split(",") if uuid]
    if not gpus:
        return {}
    request = docker.types.DeviceRequest(driver="nvidia", device_ids=gpus, capabilities=[GPU_CAPABILITIES])
    return {"device_requests": [request]}


def _container_env(spec: JobSpec, env: dict[str, str]) -> dict[str, str]:
    """The driver's environment, with host paths replaced by the container's."""
    env = dict(env)
    if "PATH" not in spec.env:
        env.pop("PATH", None)
    if "HOME" not in spec.env:
        env["HOME"] = JOB_HOME
    env["GRID_INPUT_DIR"] = VOLUME_DIR
    env["GRID_OUTPUT_DIR"] = OUTPUT_DIR
    return env


def _hand_over(dirs: JobDirs, user: str) -> None:
    """Let the job's user read the inputs and write the outputs (blocking)."""
    uid, _, gid = user.partition(":")
    if os.geteuid() == 0 and uid.isdigit():
        owner = (int(uid), int(gid) if gid.isdigit() else int(uid))
        # follow_symlinks=False: a link among the inputs must not hand over its target.
        os.chown(dirs.output, *owner, follow_symlinks=False)
        for top, subdirs, files in os.walk(dirs.volume):
            for name in (top, *(os.path.join(top, entry) for entry in subdirs + files)):
                os.chown(name, *owner, follow_symlinks=False)
    else:
        dirs.output.chmod(0o777)
        dirs.volume.chmod(0o755)


def _start_failure(container: Container, spec: JobSpec, exc: APIError) -> BaseException:
    """The RuntimeFailure for a container that could not start, or ``exc`` itself (blocking)."""
    status = None
    with contextlib.suppress(APIError):
        container.reload()
        status = container.attrs["State"].get("ExitCode")
    explanation = str(exc.explanation or exc)
    if "could not select device driver" in explanation:  # the engine has no NVIDIA runtime after all
        return GpuUnavailable(f"{NO_NVIDIA_RUNTIME} ({explanation})")
    if status == EXIT_NOT_FOUND or "executable file not found" in explanation:
        return RuntimeFailure(FailureReason.COMMAND_NOT_FOUND, f"command not found: {spec.command[0]}")
    if status == EXIT_NOT_EXECUTABLE or "permission denied" in explanation:
        return RuntimeFailure(FailureReason.COMMAND_NOT_FOUND, f"command is not executable: {spec.command[0]}")
    return exc


def _pump(
    stream: CancellableStream,
    loop: asyncio.AbstractEventLoop,
    stdout: asyncio.StreamReader,
    stderr: asyncio.StreamReader,
) -> None:
    """Feed the attached output into the readers until the container's streams close (a thread)."""
    try:
        for out, err in stream:
            if out:
                loop.call_soon_threadsafe(stdout.feed_data, out)
            if err:
                loop.call_soon_threadsafe(stderr.feed_data, err)
    except Exception:
        log.warning("reading a container's output failed", exc_info=True)
    finally:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody reads anymore
            loop.call_soon_threadsafe(stdout.feed_eof)
            loop.call_soon_threadsafe(stderr.feed_eof)
        with contextlib.suppress(Exception):
            stream.close()
            # close() shuts the socket, but the HTTP response still holds it open until closed too.
            stream._response.close()


def _remove(container: Any) -> bool:
    """Remove ``container`` (forced); ``False`` when it is gone already or being removed (409)."""
    try:
        container.remove(force=True)
    except NotFound:
        return False
    except APIError as exc:
        if exc.status_code == 409:  # "removal already in progress": someone else is at it
            return False
        raise
    return True


def sweep_leftovers(
    client: docker.DockerClient, alive: Callable[[int], bool], *, miner: str, forkserver: str
) -> list[str]:
    """Remove the containers of ``miner``'s executors that are gone (left by a crash).

    A container of an earlier fork server of the miner (it restarted: its executors died or
    were orphaned with it) always goes; one of this fork server's (``forkserver``) goes when its
    executor's pid is no longer ``alive``. Pids are only judged in this fork server's own pid
    namespace, where its executors live: containers of other miners on the same engine are never
    touched, whatever their pids happen to name here.

    Blocking; the fork server calls it when it starts and every ``GRID_EXECUTOR_SWEEP_S``.

    Returns:
        The ids of the containers removed.
    """
    removed = []
    for container in client.containers.list(all=True, filters={"label": f"{MINER_LABEL}={miner}"}):
        labels = container.labels
        if labels.get(MINER_LABEL) != miner:
            continue
        pid_label = labels.get(EXECUTOR_LABEL, "")
        ours_now = labels.get(FORKSERVER_LABEL) == forkserver
        if ours_now and (not pid_label.isdigit() or alive(int(pid_label))):
            continue
        if _remove(container):
            removed.append(container.id)
            log.info("removed container %s left by executor %s", container.short_id, pid_label or "?")
    return removed
