"""Send a finished job's outputs and logs; gather its inline artifacts (DESIGN.md §5 "upload", §6).

The output directory belongs to the job, which may have left symlinks to the miner's files,
fifos, or a process still writing there. So a file is opened one path component at a time,
relative to the directory before it, with ``O_NOFOLLOW`` (never by its whole path), must be a
regular file, and is then read only through that descriptor: the bytes hashed are the bytes
sent, and a retried upload starts again from offset 0 of the same file.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import hashlib
import os
import posixpath
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from executor.datapolicy import DataPlaneError, DataPolicy
from executor.transfer import check_status, guard, new_client, redact, require_store_url, with_retries
from protocol.messages.jobs import OutputRecord, StoreLink, StoreLinks
from protocol.spec import JobSpec, ObjectOutput, UrlOutput
from protocol.status import FailureReason

__all__ = ["collect_artifacts", "digest_only", "upload_logs", "upload_outputs"]

CHUNK = 64 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a fifo the job left in place of a file must not hang the executor.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def _open_dir(root: Path, parts: list[str]) -> int:
    """A descriptor of the directory ``root/parts...``, reached through no symlink."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_output(output_dir: Path, path: str) -> int:
    """A read-only descriptor of the regular file ``output_dir/path``; OUTPUT_MISSING otherwise."""
    parts = path.split("/")
    problems = {
        errno.ENOENT: "does not exist",
        errno.ELOOP: "is a symbolic link (not followed)",
        errno.ENOTDIR: "is under something that is not a directory (or is a symbolic link)",
    }
    try:
        dir_fd = _open_dir(output_dir, parts[:-1])
        try:
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        problem = problems.get(exc.errno or 0, f"cannot be opened ({exc.strerror})")
        raise DataPlaneError(FailureReason.OUTPUT_MISSING, f"output {path!r} {problem}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise DataPlaneError(FailureReason.OUTPUT_MISSING, f"output {path!r} is not a regular file")
    return fd


class _FileSlice:
    """The first ``size`` bytes of an open file, hashed as they are read.

    ``read``/``seek``/``tell`` are all httpx's multipart encoder needs; ``chunks`` feeds a PUT.
    Seeking to 0 restarts the hash, as each attempt does.
    """

    def __init__(self, fd: int, size: int, what: str) -> None:
        self.fd = fd
        self.size = size
        self.what = what
        self.seek(0)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self.position = self.size + offset if whence == os.SEEK_END else offset
        self._hash = hashlib.sha256() if self.position == 0 else None
        return self.position

    def tell(self) -> int:
        return self.position

    def read(self, n: int = -1) -> bytes:
        want = self.size - self.position if n < 0 else min(n, self.size - self.position)
        if want <= 0:
            return b""
        data = os.pread(self.fd, want, self.position)
        if not data:
            raise DataPlaneError(FailureReason.UPLOAD_FAILED, f"{self.what}: the file shrank while being sent")
        if self._hash is not None:
            self._hash.update(data)
        self.position += len(data)
        return data

    async def chunks(self) -> AsyncIterator[bytes]:
        while chunk := self.read(CHUNK):
            yield chunk

    def digest(self) -> str:
        if self._hash is None or self.position != self.size:
            raise DataPlaneError(FailureReason.UPLOAD_FAILED, f"{self.what}: the file was not sent whole")
        return self._hash.hexdigest()


async def _send(
    client: httpx.AsyncClient,
    fd: int,
    size: int,
    *,
    url: str,
    guarded: bool,
    policy: DataPolicy,
    what: str,
    output: UrlOutput | None = None,
) -> str:
    """Send ``size`` bytes of ``fd`` (PUT, or the multipart POST ``output`` asks for); return their sha256."""

    async def attempt() -> str:
        if guarded:
            await guard(url, policy, FailureReason.UPLOAD_FAILED, what)
        body = _FileSlice(fd, size, what)
        if output is not None and output.method == "POST":
            filename = output.path.rsplit("/", 1)[-1]
            request = client.build_request(
                "POST", url, data=dict(output.fields), files={output.file_field: (filename, body)}
            )
        else:
            # An explicit Content-Length: presigned S3 PUTs refuse chunked bodies.
            content = body.chunks() if size else b""
            request = client.build_request("PUT", url, content=content, headers={"Content-Length": str(size)})
        response = await client.send(request, stream=True)
        try:
            await check_status(response)
        finally:
            await response.aclose()
        return body.digest()

    return await with_retries(attempt, policy, reason=FailureReason.UPLOAD_FAILED, what=what)


def _over(limit: int, message: str) -> DataPlaneError:
    return DataPlaneError(FailureReason.OUTPUT_TOO_LARGE, f"{message} the miner's limit of {limit} bytes")


def _check_sizes(sizes: list[tuple[str, int]], limit: int) -> None:
    total = 0
    for path, size in sizes:
        if size > limit:
            raise _over(limit, f"output {path!r} has {size} bytes, over")
        total += size
        if total > limit:
            raise _over(limit, f"outputs total {total} bytes (at {path!r}), over")


def _store_link(links: StoreLinks, path: str, what: str) -> StoreLink:
    link = links.outputs.get(path)
    if link is None:
        raise DataPlaneError(FailureReason.UPLOAD_FAILED, f"{what}: the facilitator gave no upload link")
    require_store_url(link.url, FailureReason.UPLOAD_FAILED, what)
    return link


async def upload_outputs(spec: JobSpec, links: StoreLinks, output_dir: Path, policy: DataPolicy) -> list[OutputRecord]:
    """Send every output of ``spec`` from ``output_dir``, in the spec's order.

    Every output is found and measured before any is sent, so a missing or oversized file
    fails the job without a partial upload.

    Args:
        spec: the verified job spec.
        links: the facilitator's signed PUT URLs of the object outputs, by output path.
        output_dir: the job's output directory (the job's to tamper with).
        policy: the miner's limits.

    Returns:
        One record per output, with the sha256 and size of the bytes sent.

    Raises:
        DataPlaneError: OUTPUT_MISSING, OUTPUT_TOO_LARGE or UPLOAD_FAILED.
    """
    if not spec.outputs:
        return []
    sizes = []
    for output in spec.outputs:
        if isinstance(output, ObjectOutput):
            _store_link(links, output.path, f"output {output.path!r}")
        fd = _open_output(output_dir, output.path)
        try:
            sizes.append((output.path, os.fstat(fd).st_size))
        finally:
            os.close(fd)
    _check_sizes(sizes, policy.max_output_bytes)

    records = []
    sent: list[tuple[str, int]] = []
    async with new_client(policy) as client:
        for output in spec.outputs:
            fd = _open_output(output_dir, output.path)
            try:
                # Measured again: the file may have changed since the check above.
                size = os.fstat(fd).st_size
                sent.append((output.path, size))
                _check_sizes(sent, policy.max_output_bytes)
                if isinstance(output, ObjectOutput):
                    link = _store_link(links, output.path, f"output {output.path!r}")
                    what = f"output {output.path!r} (PUT {redact(link.url)})"
                    digest = await _send(client, fd, size, url=link.url, guarded=False, policy=policy, what=what)
                    records.append(
                        OutputRecord(path=output.path, sha256=digest, size=size, kind="object", ref=link.key)
                    )
                else:
                    what = f"output {output.path!r} ({output.method} {redact(output.url)})"
                    digest = await _send(
                        client, fd, size, url=output.url, guarded=True, policy=policy, what=what, output=output
                    )
                    records.append(OutputRecord(path=output.path, sha256=digest, size=size, kind="url", ref=None))
            finally:
                os.close(fd)
    return records


async def upload_logs(
    links: StoreLinks, stdout_file: Path, stderr_file: Path, policy: DataPolicy
) -> list[OutputRecord]:
    """PUT the job's whole stdout and stderr to their store links.

    Empty or absent streams, and streams without a link, are skipped.

    Raises:
        DataPlaneError: OUTPUT_TOO_LARGE (a stream over ``max_output_bytes``) or UPLOAD_FAILED.
    """
    streams = [("stdout", links.stdout, stdout_file), ("stderr", links.stderr, stderr_file)]
    records: list[OutputRecord] = []
    client: httpx.AsyncClient | None = None
    try:
        for name, link, path in streams:
            if link is None:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)  # the executor's own file
            except FileNotFoundError:
                continue
            try:
                size = os.fstat(fd).st_size
                if size == 0:
                    continue
                if size > policy.max_output_bytes:
                    raise _over(policy.max_output_bytes, f"{name} has {size} bytes, over")
                require_store_url(link.url, FailureReason.UPLOAD_FAILED, name)
                client = client or new_client(policy)
                what = f"{name} (PUT {redact(link.url)})"
                digest = await _send(client, fd, size, url=link.url, guarded=False, policy=policy, what=what)
                records.append(OutputRecord(path=name, sha256=digest, size=size, kind="object", ref=link.key))
            finally:
                os.close(fd)
    finally:
        if client is not None:
            await client.aclose()
    return records


def _digest_fd(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK * 16):
        digest.update(chunk)
    return digest.hexdigest()


def _digest_all(spec: JobSpec, output_dir: Path, logs: list[tuple[str, Path]], policy: DataPolicy) -> tuple[
    list[OutputRecord], list[OutputRecord]
]:  # fmt: skip
    outputs, sizes = [], []
    for output in spec.outputs:
        fd = _open_output(output_dir, output.path)
        try:
            sizes.append((output.path, os.fstat(fd).st_size))
            _check_sizes(sizes, policy.max_output_bytes)
            kind = "object" if isinstance(output, ObjectOutput) else "url"
            outputs.append(OutputRecord(path=output.path, sha256=_digest_fd(fd), size=sizes[-1][1], kind=kind))
        finally:
            os.close(fd)
    records = []
    for name, path in logs:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        try:
            size = os.fstat(fd).st_size
            if size > policy.max_output_bytes:
                raise _over(policy.max_output_bytes, f"{name} has {size} bytes, over")
            if size:
                records.append(OutputRecord(path=name, sha256=_digest_fd(fd), size=size, kind="object"))
        finally:
            os.close(fd)
    return outputs, records


async def digest_only(
    spec: JobSpec, output_dir: Path, stdout_file: Path, stderr_file: Path, policy: DataPolicy
) -> tuple[list[OutputRecord], list[OutputRecord]]:
    """A validator's cross-validation run: the records an upload would make, with nothing sent.

    Returns ``(outputs, logs)`` with the same paths and digests as :func:`upload_outputs` and
    :func:`upload_logs` give for the same files (``ref`` is ``None``: nothing is stored).

    Raises:
        DataPlaneError: OUTPUT_MISSING or OUTPUT_TOO_LARGE, as an upload would.
    """
    logs = [("stdout", stdout_file), ("stderr", stderr_file)]
    return await asyncio.to_thread(_digest_all, spec, output_dir, logs, policy)


def _read(fd: int, size: int) -> bytes:
    """At most ``size`` bytes from the start of ``fd`` (the file may change under us)."""
    chunks = []
    offset = 0
    while offset < size and (chunk := os.pread(fd, min(CHUNK, size - offset), offset)):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def collect_artifacts(spec: JobSpec, output_dir: Path, policy: DataPolicy) -> dict[str, str]:
    """The regular files under ``output_dir/spec.artifacts_dir``, base64-encoded, by relative posix path.

    Symlinks are skipped, never followed (nor is a symlinked artifacts directory); a missing
    directory gives ``{}``.

    Raises:
        DataPlaneError: OUTPUT_TOO_LARGE when the files total over ``max_artifact_bytes``
            (counted before base64).
    """
    if spec.artifacts_dir is None:
        return {}
    limit = policy.max_artifact_bytes
    try:
        top = _open_dir(output_dir, spec.artifacts_dir.split("/"))
    except OSError:  # absent, a symlink (ENOTDIR, ELOOP), or made unreadable by the job
        return {}
    artifacts: dict[str, str] = {}
    total = 0
    try:
        # fwalk lists through descriptors and does not descend into symlinked directories.
        for dirpath, _dirnames, filenames, dir_fd in os.fwalk(".", dir_fd=top):
            for name in sorted(filenames):
                try:
                    fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
                except OSError:  # a symlink (ELOOP), or gone
                    continue
                try:
                    info = os.fstat(fd)
                    if not stat.S_ISREG(info.st_mode):
                        continue
                    total += info.st_size
                    if total > limit:
                        raise _over(limit, f"artifacts in {spec.artifacts_dir!r} total more than")
                    data = _read(fd, info.st_size)
                finally:
                    os.close(fd)
                artifacts[posixpath.normpath(posixpath.join(dirpath, name))] = base64.b64encode(data).decode("ascii")
    finally:
        os.close(top)
    return dict(sorted(artifacts.items()))
